"""Constrained beam search (Anderson et al., EMNLP 2017, "Guided Open Vocabulary Image
Captioning with Constrained Beam Search") over Decoder.step.

Each photo may carry up to a few tags (captioner.grounding); a caption must use every tag once.
A finite-state machine tracks which tags a hypothesis has used: with C tags it has 2**C states
(bit c set: tag c used), the search keeps its own beam of k hypotheses per state, and the
caption is the best finished hypothesis of the accepting state (every tag used; when no
hypothesis reaches it within max_length, the state with the most tags used). Each tag may be
any of several words ("dog" or "dogs"), so the machine is over disjunctions, as in the paper.
Vetoed words are never candidates. Batched like beam_search: photo n, state s, beam j at row
(n * S + s) * k + j, with no Python loop over photos, states or beams.
"""
from __future__ import annotations

import torch

from .decoder import Decoder
from .decoding import (START, Beams, DecodeOptions, Hypothesis, Repeats, _collect, _lengths,
                       _next_word_log_probs, decode, end_only_scores, extend_beams)
from .grounding import Grounding


def decode_grounded(decoder: Decoder, features: torch.Tensor, options: DecodeOptions,
                    grounding: Grounding | None, content_words: torch.Tensor | None = None
                    ) -> list[list[Hypothesis]]:
    """decode(), with the photos' tags and vetoes when there are any: the captions of photos
    without them are exactly decode()'s."""
    if grounding is None or not grounding.constrained:
        return decode(decoder, features, options, content_words)
    return constrained_beam_search(decoder, features, options, grounding, content_words)


def constrained_beam_search(decoder: Decoder, features: torch.Tensor, options: DecodeOptions,
                            grounding: Grounding, content_words: torch.Tensor | None = None
                            ) -> list[list[Hypothesis]]:
    """features (B, L, D) -> each photo's options.n_best hypotheses, best first, ranked as
    beam_search ranks them."""
    batch, k, device = features.shape[0], options.beam_size, features.device
    states = 1 << int(grounding.counts.max())  # S (1: vetoes only, a plain beam per photo)
    per_photo = states * k
    repeats = Repeats.rule(options, content_words)
    memory = decoder.prepare(features, decoding=True, hard_mode=options.hard_mode,
                             temperature=options.attention_temperature)
    photo_of_row = torch.arange(batch, device=device).repeat_interleave(per_photo)
    state = decoder.init_state(memory).select(photo_of_row)
    vocab = decoder.config.vocab_size
    word_bits = grounding.word_bits[photo_of_row]  # (R, V)
    vetoed = grounding.vetoed[photo_of_row]  # (R, V)
    row_state = torch.arange(states, device=device).repeat_interleave(k).repeat(batch)  # (R,)
    tokens = torch.full((batch * per_photo,), START, dtype=torch.long, device=device)
    scores = torch.full((batch, per_photo), float("-inf"), device=device)
    scores[:, 0] = 0.0  # only state 0's first beam lives at the start
    end_only = end_only_scores(vocab, device)
    words, alphas, word_log_probs, finished = Beams.empty(batch * per_photo, features.shape[1],
                                                          device)
    offsets = (torch.arange(batch, device=device) * per_photo).unsqueeze(1)  # (B, 1)
    for t in range(options.max_length + 1):
        out = decoder.step(tokens, state, memory)
        log_probs = _next_word_log_probs(out.logits, t, options.max_length)  # (R, V)
        allowed = repeats.apply(log_probs, words)
        # A tag is used once: its words are barred where the hypothesis has used it already.
        used_again = (word_bits & row_state.unsqueeze(1)) != 0
        allowed = allowed.masked_fill(vetoed | used_again, float("-inf"))
        allowed = torch.where(finished.unsqueeze(1), end_only, allowed)
        log_probs = torch.where(finished.unsqueeze(1), end_only, log_probs)
        next_state = (row_state.unsqueeze(1) | word_bits).view(batch, -1)  # (B, S*k*V)
        candidates = (scores.view(-1, 1) + allowed).view(batch, -1)
        picked_scores, picked = [], []
        for s in range(states):  # the best k candidates that land in state s
            top = candidates.masked_fill(next_state != s, float("-inf")).topk(k, dim=1)
            picked_scores.append(top.values)
            picked.append(top.indices)
        scores = torch.stack(picked_scores, 1).view(batch, per_photo)
        flat = torch.stack(picked, 1).view(batch, per_photo)
        rows = (offsets + flat // vocab).view(-1)  # parent row of each new hypothesis
        tokens = (flat % vocab).view(-1)
        words, alphas, word_log_probs, finished, state = extend_beams(
            Beams(words, alphas, word_log_probs, finished), rows, tokens, out, log_probs)
        dead = scores.view(-1) == float("-inf")
        if bool((finished | dead).all()):
            break
    return _choose(words, alphas, word_log_probs, scores, row_state, options, states, k)


def _choose(words: torch.Tensor, alphas: torch.Tensor, word_log_probs: torch.Tensor,
            scores: torch.Tensor, row_state: torch.Tensor, options: DecodeOptions,
            states: int, k: int) -> list[list[Hypothesis]]:
    """Each photo's n_best among the hypotheses of its most complete reachable state."""
    batch = scores.shape[0]
    lengths = _lengths(words).float() + 1.0
    searched = scores.view(-1)
    ranking = (searched / lengths.pow(options.length_penalty) if options.length_penalty
               else searched).view(batch, -1)
    used = torch.tensor([bin(s).count("1") for s in range(states)],
                        device=scores.device)[row_state].view(batch, -1)  # tags used per row
    alive = ranking > float("-inf")
    # The most tags any live hypothesis of the photo has used (the accepting state when
    # reached; a photo's count caps it, since its unused bits are never set).
    best_used = used.masked_fill(~alive, -1).amax(dim=1, keepdim=True)
    eligible = alive & (used == best_used)
    order = ranking.masked_fill(~eligible, float("-inf")).argsort(dim=1, descending=True)
    hypotheses = _collect(words, alphas, ranking.view(-1), word_log_probs.sum(dim=1),
                          word_log_probs)
    per_photo = states * k
    results = []
    for n in range(batch):
        picked = [j for j in order[n].tolist() if bool(eligible[n, j])][:options.n_best]
        results.append([hypotheses[n * per_photo + j] for j in picked])
    return results
