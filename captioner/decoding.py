"""Decoding strategies as plain functions over Decoder.step.

Everything is batched: greedy and sampling run B rows; beam search runs B*k rows (image n,
beam j at row n*k + j) with no Python loop over images or beams. Results leave the tensor world
once, at the end. Callers put the decoder in eval mode and, for speed, in inference_mode.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .decoder import Decoder
from .vocab import Vocabulary

START, END, PAD = Vocabulary.start_id, Vocabulary.end_id, Vocabulary.pad_id
UNK = Vocabulary.unk_id

# How the app, the CLI, the Python API, training's validation and evaluate decode unless
# told otherwise: defined here once.
BEAM_SIZE = 3
MAX_LENGTH = 20
# Beam search ranks finished captions by log p / (words + 1) ** LENGTH_PENALTY (0: by log p
# alone, which favours short captions). 1.0 was chosen on the Flickr8k val split for the
# default model (docs/results.md, python -m benchmarks.length_penalty).
LENGTH_PENALTY = 1.0
# No caption holds the same REPEAT_NGRAM words twice ("a boy in a blue shirt and blue shirt"):
# a word that would complete an n-gram the caption already holds is not a candidate. Pairs
# (2), not trigrams (3): chosen on val for both shipped models, where it raised BLEU-4, METEOR
# and CIDEr (docs/results.md, python -m benchmarks.length_penalty --repeat-ngrams 3,2); human
# references repeat a pair of words in 4% of Flickr8k's training captions.
BLOCK_REPEATS = True
REPEAT_NGRAM = 2
# ... and each earlier use of a content word (not a function word such as "a", "in"; see
# captioner.vocab.FUNCTION_WORDS) costs a candidate this much log-probability: "a man in a red
# shirt and a black shirt" repeats no pair but still says "shirt" twice. Chosen on val: scores
# within noise, captions using a content word twice 130 -> 11 of 1,000 (docs/results.md).
# Decoding has no vocabulary, so the caller names the content words (content_words, from
# Vocabulary.content_words(); the Captioner and caption_records do): without them, no penalty.
REPEAT_PENALTY = 2.0


def content_word_mask(vocab: Vocabulary, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """(V,) bool: the words REPEAT_PENALTY applies to (decoding's content_words)."""
    return torch.tensor(vocab.content_words(), device=device)


class Hypothesis(NamedTuple):
    tokens: list[int]  # word ids, without <start> and <end>
    # ranking score: log_prob less any repeat penalties, divided by length**length_penalty
    # when asked
    score: float
    log_prob: float  # sum of the log-probabilities of the words and the closing <end>
    alphas: torch.Tensor  # (len(tokens), L) attention weights of each word
    # (len(tokens),) log p of each word given the words before it (how sure the model was)
    word_log_probs: torch.Tensor


class Repeats(NamedTuple):
    """What keeps a caption from repeating itself (see REPEAT_NGRAM, REPEAT_PENALTY)."""

    ngram: int = 0  # no n-gram of this many words twice (0: no blocking)
    penalty: float = 0.0  # log-probability cost of each earlier use of a content word
    content_words: torch.Tensor | None = None  # (V,) bool: the words the penalty applies to

    @classmethod
    def rule(cls, block_repeats: bool, repeat_ngram: int, repeat_penalty: float,
             content_words: torch.Tensor | None) -> "Repeats":
        if not block_repeats:
            return cls()
        return cls(repeat_ngram, repeat_penalty if content_words is not None else 0.0,
                   content_words)

    def apply(self, log_probs: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """log_probs (R, V) of the next word after words (R, t)."""
        if self.ngram:
            log_probs = block_repeated_ngrams(log_probs, words, self.ngram)
        if self.penalty and words.shape[1]:
            uses = torch.zeros_like(log_probs).scatter_add_(
                1, words, torch.ones_like(words, dtype=log_probs.dtype))
            log_probs = log_probs - self.penalty * uses * self.content_words.to(log_probs)
        return log_probs


def greedy(decoder: Decoder, features: torch.Tensor, max_length: int = MAX_LENGTH,
           block_repeats: bool = BLOCK_REPEATS, repeat_ngram: int = REPEAT_NGRAM,
           repeat_penalty: float = REPEAT_PENALTY, content_words: torch.Tensor | None = None
           ) -> list[Hypothesis]:
    """Most likely word at every step. features (B, L, D) -> one hypothesis per image; repeats
    handled as in beam_search."""
    return _walk(decoder, features, max_length, lambda log_probs: log_probs.argmax(dim=-1),
                 Repeats.rule(block_repeats, repeat_ngram, repeat_penalty, content_words))


def sample(decoder: Decoder, features: torch.Tensor, max_length: int = MAX_LENGTH,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> list[Hypothesis]:
    """Words drawn from p(y_t | ...)^(1/temperature); log_prob is under the model itself
    (no repeat blocking: the samples follow the model's own distribution)."""
    def draw(log_probs: torch.Tensor) -> torch.Tensor:
        probs = (log_probs / temperature).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return _walk(decoder, features, max_length, draw, Repeats())


def _walk(decoder: Decoder, features: torch.Tensor, max_length: int,
          choose: Callable[[torch.Tensor], torch.Tensor], repeats: Repeats
          ) -> list[Hypothesis]:
    """One word per image per step, picked by choose(log_probs (B, V)) -> (B,) word ids."""
    memory = decoder.prepare(features, decoding=True)
    state = decoder.init_state(memory)
    batch = features.shape[0]
    tokens = torch.full((batch,), START, dtype=torch.long, device=features.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    total = torch.zeros(batch, device=features.device)  # the model's log p
    searched = torch.zeros(batch, device=features.device)  # less the repeat penalties: the score
    words, alphas, word_log_probs = [], [], []
    for t in range(max_length + 1):  # room for max_length words and the closing <end>
        out = decoder.step(tokens, state, memory)
        log_probs = _next_word_log_probs(out.logits, t, max_length)  # (B, V)
        allowed = repeats.apply(log_probs, torch.stack(words, 1)) if words else log_probs
        tokens = choose(allowed).masked_fill(finished, END)
        # The model's own log p of the word: what a caption reports, whatever picked it.
        chosen = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        total += chosen
        searched += allowed.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        words.append(tokens)
        word_log_probs.append(chosen)
        alphas.append(out.attention.weights)
        finished = finished | (tokens == END)
        state = out.state
        if bool(finished.all()):
            break
    return _collect(torch.stack(words, 1), torch.stack(alphas, 1), searched, total,
                    torch.stack(word_log_probs, 1))


def beam_search(decoder: Decoder, features: torch.Tensor, beam_size: int = BEAM_SIZE,
                max_length: int = MAX_LENGTH, n_best: int = 1,
                length_penalty: float = LENGTH_PENALTY, block_repeats: bool = BLOCK_REPEATS,
                repeat_ngram: int = REPEAT_NGRAM, repeat_penalty: float = REPEAT_PENALTY,
                content_words: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """Batched beam search. features (B, L, D) -> for each image its n_best hypotheses, best first.

    A finished hypothesis stays in the beam and may only be extended by <end> at no cost, so
    every row advances in lockstep. With length_penalty > 0 the final ranking divides each
    log-probability by (number of words + 1) ** length_penalty. With block_repeats no
    hypothesis holds the same n-gram of repeat_ngram words twice, and each earlier use of a
    word marked in content_words (V,) costs repeat_penalty.

    An image leaves the batch as soon as its result is settled (without length penalty: its
    n_best-th best finished hypothesis scores at least as high as every live one, which can
    only lose probability), so the remaining steps run on fewer rows, and the search ends
    when the last image is settled instead of after max_length steps.
    """
    if beam_size < 1:
        raise ValueError("beam_size must be at least 1")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size})")
    batch, k, device = features.shape[0], beam_size, features.device
    repeats = Repeats.rule(block_repeats, repeat_ngram, repeat_penalty, content_words)
    memory = decoder.prepare(features, decoding=True)  # one copy per image for its k beams
    state = decoder.init_state(memory).select(
        torch.arange(batch, device=device).repeat_interleave(k))  # (B*k, n)
    vocab = decoder.config.vocab_size
    tokens = torch.full((batch * k,), START, dtype=torch.long, device=device)
    # Only beam 0 is alive at the start; the others would duplicate it.
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(batch * k, dtype=torch.bool, device=device)
    end_only = torch.full((vocab,), float("-inf"), device=device)
    end_only[END] = 0.0
    words = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    alphas = torch.empty(batch * k, 0, features.shape[1], device=device)
    word_log_probs = torch.empty(batch * k, 0, device=device)
    images = torch.arange(batch, device=device)  # original index of each image still searched
    results: list[list[Hypothesis] | None] = [None] * batch
    for t in range(max_length + 1):
        n = len(images)
        out = decoder.step(tokens, state, memory)
        log_probs = _next_word_log_probs(out.logits, t, max_length)  # (n*k, V)
        # The search ranks by `allowed`; captions report the model's own log p. Repeats
        # before the <end>-only rows: their trailing <end>s may "repeat".
        allowed = torch.where(finished.unsqueeze(1), end_only, repeats.apply(log_probs, words))
        log_probs = torch.where(finished.unsqueeze(1), end_only, log_probs)
        candidates = (scores.view(-1, 1) + allowed).view(n, k * vocab)
        scores, flat = candidates.topk(k, dim=1)  # (n, k) each
        offsets = (torch.arange(n, device=device) * k).unsqueeze(1)
        rows = (offsets + flat // vocab).view(-1)  # parent row of each new hypothesis
        tokens = (flat % vocab).view(-1)
        words = torch.cat([words.index_select(0, rows), tokens.unsqueeze(1)], dim=1)
        alphas = torch.cat([alphas.index_select(0, rows),
                            out.attention.weights.index_select(0, rows).unsqueeze(1)], dim=1)
        word_log_probs = torch.cat([word_log_probs.index_select(0, rows),
                                    log_probs[rows, tokens].unsqueeze(1)], dim=1)
        finished = finished.index_select(0, rows) | (tokens == END)
        state = out.state.select(rows)
        settled = _settled(scores, finished.view(n, k), n_best, length_penalty)
        if t == max_length:
            settled = torch.ones_like(settled)
        if bool(settled.any()):
            done = settled.nonzero().squeeze(1)
            done_rows = (done.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            for image, hyps in zip(images[done].tolist(),
                                   _rank(words[done_rows], alphas[done_rows],
                                         word_log_probs[done_rows], scores[done].view(-1), k,
                                         n_best, length_penalty)):
                results[image] = hyps
            if bool(settled.all()):
                break
            keep = (~settled).nonzero().squeeze(1)
            keep_rows = (keep.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            images, scores = images[keep], scores[keep]
            tokens, finished = tokens[keep_rows], finished[keep_rows]
            words, alphas = words[keep_rows], alphas[keep_rows]
            word_log_probs = word_log_probs[keep_rows]
            state, memory = state.select(keep_rows), memory.select(keep)
    return results


def decode(decoder: Decoder, features: torch.Tensor, beam_size: int = BEAM_SIZE, n_best: int = 1,
           max_length: int = MAX_LENGTH, length_penalty: float = LENGTH_PENALTY,
           block_repeats: bool = BLOCK_REPEATS, repeat_ngram: int = REPEAT_NGRAM,
           repeat_penalty: float = REPEAT_PENALTY, content_words: torch.Tensor | None = None
           ) -> list[list[Hypothesis]]:
    """Each image's n_best hypotheses, best first: beam search, or greedy decoding for a beam
    of one (the same words, faster). The decoding of the app, the CLI, validation and
    evaluate. features (B, L, D) float32; call in inference_mode with the decoder in eval."""
    if beam_size == 1 and n_best == 1:
        return [[h] for h in greedy(decoder, features, max_length, block_repeats, repeat_ngram,
                                    repeat_penalty, content_words)]
    return beam_search(decoder, features, beam_size, max_length, n_best, length_penalty,
                       block_repeats, repeat_ngram, repeat_penalty, content_words)


def _settled(scores: torch.Tensor, finished: torch.Tensor, n_best: int, length_penalty: float
             ) -> torch.Tensor:
    """(n,) True where no further step can change an image's n_best result."""
    if length_penalty:  # a longer caption may still overtake: wait until every beam ends
        return finished.all(dim=1)
    finished_scores = scores.masked_fill(~finished, float("-inf"))
    nth_finished = finished_scores.topk(n_best, dim=1).values[:, -1]
    best_live = scores.masked_fill(finished, float("-inf")).max(dim=1).values
    # Strictly better: a live hypothesis that ties could still end and take the place.
    return finished.all(dim=1) | (nth_finished > best_live)


def _rank(words: torch.Tensor, alphas: torch.Tensor, word_log_probs: torch.Tensor,
          searched: torch.Tensor, k: int, n_best: int, length_penalty: float
          ) -> list[list[Hypothesis]]:
    """Rows of n images x k beams -> each image's n_best hypotheses, best first. searched:
    the search's running score (log p less any repeat penalties)."""
    lengths = _lengths(words).float() + 1.0
    ranking = searched / lengths.pow(length_penalty) if length_penalty else searched
    hypotheses = _collect(words, alphas, ranking, word_log_probs.sum(dim=1), word_log_probs)
    order = ranking.view(-1, k).argsort(dim=1, descending=True)[:, :n_best].tolist()
    return [[hypotheses[n * k + j] for j in row] for n, row in enumerate(order)]


def _next_word_log_probs(logits: torch.Tensor, step: int, max_length: int) -> torch.Tensor:
    """log p(y_t) (R, V): <pad>, <start> and <unk> forbidden; only <end> after max_length words."""
    log_probs = logits.float().log_softmax(dim=-1)
    if step == max_length:
        return torch.full_like(log_probs, float("-inf")).index_copy_(
            1, torch.tensor([END], device=logits.device), log_probs[:, END:END + 1])
    log_probs[:, PAD] = float("-inf")
    log_probs[:, START] = float("-inf")
    log_probs[:, UNK] = float("-inf")  # a caption never shows "<unk>" to a user
    return log_probs


def block_repeated_ngrams(log_probs: torch.Tensor, words: torch.Tensor, n: int) -> torch.Tensor:
    """log_probs (R, V) with -inf for every word that would complete an n-gram that row r of
    words (R, t), the words so far, already holds."""
    t = words.shape[1]
    if t < n:
        return log_probs
    # Position j starts an n-gram w_j .. w_j+n-1 whose first n-1 words are the last n-1.
    same_prefix = torch.ones_like(words[:, :t - n + 1], dtype=torch.bool)
    for k in range(n - 1):
        same_prefix &= words[:, k:k + t - n + 1] == words[:, t - n + 1 + k:t - n + 2 + k]
    repeats = torch.zeros_like(log_probs).scatter_add_(1, words[:, n - 1:],
                                                        same_prefix.to(log_probs.dtype))
    return log_probs.masked_fill(repeats > 0, float("-inf"))


def _lengths(words: torch.Tensor) -> torch.Tensor:
    """Number of words before the first <end> in each row of (R, T) (T when there is none)."""
    is_end = words == END
    first_end = torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1),
                            torch.full_like(words[:, 0], words.shape[1]))
    return first_end


def _collect(words: torch.Tensor, alphas: torch.Tensor, score: torch.Tensor,
             log_prob: torch.Tensor, word_log_probs: torch.Tensor) -> list[Hypothesis]:
    lengths = _lengths(words).tolist()
    words_list, scores, log_probs = words.tolist(), score.tolist(), log_prob.tolist()
    alphas, word_log_probs = alphas.float().cpu(), word_log_probs.float().cpu()
    return [Hypothesis(words_list[r][:n], scores[r], log_probs[r], alphas[r, :n],
                       word_log_probs[r, :n]) for r, n in enumerate(lengths)]
