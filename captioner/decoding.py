"""Decoding strategies as plain functions over Decoder.step.

Everything is batched: greedy and sampling run B rows; beam search runs B*k rows (image n,
beam j at row n*k + j) with no Python loop over images or beams. Results leave the tensor world
once, at the end. Callers put the decoder in eval mode and, for speed, in inference_mode.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from .decoder import Decoder, StepOutput
from .vocab import Vocabulary

START, END, PAD = Vocabulary.start_id, Vocabulary.end_id, Vocabulary.pad_id
UNK = Vocabulary.unk_id

MAX_CAPTION_LENGTH = 50  # the longest caption any caller may ask for
MAX_BEAM_SIZE = 20
HARD_MODES = ("expectation", "argmax", "sample")
# Constrained search keeps a beam per subset of tags used: 2**max_tags beams of beam_size.
MAX_TAGS = 3


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: the one set of defaults the app, the CLI, the Python API, training's
    validation and evaluate share. Passed whole; a new knob is one field here (the CLI and
    evaluate flags are generated from the fields, their help from `metadata["help"]`)."""

    beam_size: int = field(default=3, metadata={"help": "beam size (1 = greedy)",
                                                 "aliases": ["--beam"]})
    n_best: int = field(default=1, metadata={"help": "hypotheses kept per photo, best first"})
    max_length: int = field(default=20, metadata={"help": "maximum words per caption"})
    # Beam search ranks finished captions by log p / (words + 1) ** length_penalty (0: by log p
    # alone, which favours short captions). 1.0 was chosen on the Flickr8k val split for the
    # default model (docs/results.md, python -m benchmarks.length_penalty).
    length_penalty: float = field(default=1.0, metadata={
        "help": "rank hypotheses by log p / (words + 1) ** P"})
    # No caption holds the same repeat_ngram words twice ("a boy in a blue shirt and blue
    # shirt"): a word that would complete an n-gram the caption already holds is not a
    # candidate. Pairs (2), not trigrams (3): chosen on val for both shipped models, where it
    # raised BLEU-4, METEOR and CIDEr (docs/results.md, python -m benchmarks.length_penalty
    # --repeat-ngrams 3,2); human references repeat a pair of words in 4% of Flickr8k's
    # training captions.
    block_repeats: bool = field(default=True, metadata={
        "help": "never repeat a pair of words within a caption; discourage saying a content "
                "word twice"})
    repeat_ngram: int = field(default=2, metadata={
        "help": "with --block-repeats: the n-gram size never repeated (0: none)"})
    # ... and each earlier use of a content word (not a function word such as "a", "in"; see
    # captioner.vocab.FUNCTION_WORDS) costs a candidate this much log-probability: "a man in a
    # red shirt and a black shirt" repeats no pair but still says "shirt" twice. Chosen on
    # val: scores within noise, captions using a content word twice 130 -> 11 of 1,000.
    # Decoding has no vocabulary, so the caller names the content words (content_words, from
    # Vocabulary.content_words(); the Captioner and caption_records do): without them, none.
    repeat_penalty: float = field(default=2.0, metadata={
        "help": "with --block-repeats: log-probability cost of each earlier use of a content "
                "word"})
    # How a hard-attention model attends while decoding (ignored by other attentions):
    # "expectation" feeds sum_i alpha_i a_i, as the paper's own code scored its hard model
    # (kelvinxu/arctic-captions, sampling=False); "argmax" one region a word; "sample" draws
    # each word's region from alpha (what REINFORCE trains; captions differ from run to run).
    # None (the default): the mode the model file carries (ModelConfig.hard_inference, set by
    # training.export --hard-inference; the shipped hard model's is expectation, chosen on
    # Flickr8k val: docs/models.md, python -m training.evaluate --split val --hard-mode MODE).
    hard_mode: str | None = field(default=None, metadata={
        "help": "hard attention only: expectation | argmax | sample (default: the model "
                "file's own)",
        "choices": HARD_MODES})
    # Attention scores divided by this before the softmax while decoding: below 1, each word's
    # map is sharper and its context leans on fewer cells. None: the model's own
    # (ModelConfig.attention_temperature, chosen on val and COCO dev: docs/attention.md).
    attention_temperature: float | None = field(default=None, metadata={
        "help": "divide attention scores by this while decoding; below 1 sharpens the maps "
                "(None: the model's own)"})

    # Grounding (captioner.grounding, captioner.constrained): the encoder's own ImageNet
    # classifier tags the photo with caption words ("cat" from "tabby", "Egyptian cat"); the
    # caption must use each tag whose confidence reaches tag_threshold (at most max_tags of
    # them), and a tag at least veto_threshold sure bars the words of its rivals ("dog" on a
    # surely-cat photo). Chosen on COCO dev photos and Flickr8k val (docs/grounding.md).
    grounding: bool = field(default=True, metadata={
        "help": "make the caption name what the encoder's ImageNet classifier is sure of"})
    tag_threshold: float = field(default=0.3, metadata={
        "help": "with --grounding: the confidence a tag needs to be placed"})
    max_tags: int = field(default=2, metadata={
        "help": "with --grounding: at most this many tags per photo"})
    veto_threshold: float = field(default=0.8, metadata={
        "help": "with --grounding: the confidence at which a tag bars its rivals' words"})
    # ... and a word naming an object (dog, bed, pizza) is not a candidate when its tag
    # confidence is below evidence_floor: what the classifier cannot see is not said. The
    # Flickr8k model says "dog" of many photos without one (0: off).
    evidence_floor: float = field(default=0.1, metadata={
        "help": "with --grounding: the least tag confidence an object word needs"})
    # A model that reads concepts has a person detector (captioner.concepts): no word that
    # names a person (man, girl, people, he, ...) where its probability is below person_floor
    # (0: off). Trained on captions, checked on COCO dev photos it never saw
    # (benchmarks.concept_detectors); independent of --grounding. 0.3 chosen on COCO dev's
    # even-id half (docs/concepts.md), a model without a person detector ignores it.
    person_floor: float = field(default=0.3, metadata={
        "help": "bar person words where the model's person detector is below this (0: off)"})

    # Shallow fusion (captioner.language_model): this weight times a language model's log p,
    # learnt from COCO and Flickr8k caption text, is added to the captioner's at every step, so
    # the words a tag places sit the way people write about such things (0: the captioner
    # alone). Chosen on val (docs/grounding.md).
    fusion_weight: float = field(default=0.15, metadata={
        "help": "weight of the caption language model's log-probabilities (0: none)"})

    def __post_init__(self) -> None:
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"beam_size must be between 1 and {MAX_BEAM_SIZE}")
        if not 1 <= self.n_best <= self.beam_size:
            raise ValueError(f"n_best must be between 1 and beam_size ({self.beam_size})")
        if not 1 <= self.max_length <= MAX_CAPTION_LENGTH:
            raise ValueError(f"max_length must be between 1 and {MAX_CAPTION_LENGTH}")
        if self.length_penalty < 0:
            raise ValueError("length_penalty must be at least 0")
        if self.repeat_ngram < 0:
            raise ValueError("repeat_ngram must be at least 0 (0: no n-gram is blocked)")
        if self.repeat_penalty < 0:
            raise ValueError("repeat_penalty must be at least 0")
        if not 0.0 <= self.tag_threshold <= 1.0:
            raise ValueError("tag_threshold must be between 0 and 1")
        if not 0 <= self.max_tags <= MAX_TAGS:
            raise ValueError(f"max_tags must be between 0 and {MAX_TAGS}")
        if not 0.0 <= self.veto_threshold <= 1.0:
            raise ValueError("veto_threshold must be between 0 and 1")
        if not 0.0 <= self.fusion_weight <= 2.0:
            raise ValueError("fusion_weight must be between 0 and 2")
        if not 0.0 <= self.person_floor <= 1.0:
            raise ValueError("person_floor must be between 0 and 1")
        if not 0.0 <= self.evidence_floor <= 1.0:
            raise ValueError("evidence_floor must be between 0 and 1")
        if self.attention_temperature is not None and not 0.0 < self.attention_temperature <= 10.0:
            raise ValueError("attention_temperature must be above 0 and at most 10")
        if self.hard_mode is not None and self.hard_mode not in HARD_MODES:
            raise ValueError(f"hard_mode must be one of {', '.join(HARD_MODES)}; "
                             f"got {self.hard_mode!r}")

    def replace(self, **changes) -> "DecodeOptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_OPTIONS = DecodeOptions()


def resolve_options(options: DecodeOptions | None, changes: dict) -> DecodeOptions:
    """`options` (default DEFAULT_OPTIONS) with the fields named in `changes` replaced: the
    keyword shorthand of decode(..., beam_size=5), as transformers' generate(**kwargs)."""
    options = DEFAULT_OPTIONS if options is None else options
    return options.replace(**changes) if changes else options


def content_word_mask(vocab: Vocabulary, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """(V,) bool: the words DecodeOptions.repeat_penalty applies to (decoding's content_words)."""
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
    """What keeps a caption from repeating itself (DecodeOptions.repeat_ngram, repeat_penalty)."""

    ngram: int = 0  # no n-gram of this many words twice (0: no blocking)
    penalty: float = 0.0  # log-probability cost of each earlier use of a content word
    content_words: torch.Tensor | None = None  # (V,) bool: the words the penalty applies to

    @classmethod
    def rule(cls, options: DecodeOptions, content_words: torch.Tensor | None) -> "Repeats":
        if not options.block_repeats:
            return cls()
        return cls(options.repeat_ngram,
                   options.repeat_penalty if content_words is not None else 0.0, content_words)

    def apply(self, log_probs: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """log_probs (R, V) of the next word after words (R, t)."""
        if self.ngram:
            log_probs = block_repeated_ngrams(log_probs, words, self.ngram)
        if self.penalty and words.shape[1]:
            uses = torch.zeros_like(log_probs).scatter_add_(
                1, words, torch.ones_like(words, dtype=log_probs.dtype))
            log_probs = log_probs - self.penalty * uses * self.content_words.to(log_probs)
        return log_probs


def greedy(decoder: Decoder, features: torch.Tensor, options: DecodeOptions | None = None,
           content_words: torch.Tensor | None = None, **changes) -> list[Hypothesis]:
    """Most likely word at every step. features (B, L, D) -> one hypothesis per image; repeats
    handled as in beam_search (options.beam_size and n_best are not used)."""
    options = resolve_options(options, changes)
    repeats = Repeats.rule(options, content_words)
    return walk(decoder, features, options.max_length, lambda log_probs: log_probs.argmax(dim=-1),
                lambda log_probs, words, logits: repeats.apply(log_probs, words),
                options.hard_mode, options.attention_temperature).hypotheses()


def sample(decoder: Decoder, features: torch.Tensor,
           max_length: int = DEFAULT_OPTIONS.max_length,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> list[Hypothesis]:
    """Words drawn from p(y_t | ...)^(1/temperature); log_prob is under the model itself
    (no repeat blocking: the samples follow the model's own distribution)."""
    def draw(log_probs: torch.Tensor) -> torch.Tensor:
        probs = (log_probs / temperature).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return walk(decoder, features, max_length, draw).hypotheses()


class Walk(NamedTuple):
    """Where a walk went, row by row (R rows), step by step (T steps)."""

    words: torch.Tensor  # (R, T) the chosen word ids; <end> again after a row's first
    alphas: torch.Tensor  # (R, T, L) attention weights of each step
    word_log_probs: torch.Tensor  # (R, T) the model's log p of each word, 0 after the <end>
    log_prob: torch.Tensor  # (R,) their sum
    # (R,) the sum of the chosen words' scores under what they were chosen from (the model's
    # log p less any repeat penalties, or a sampling policy's log p)
    score: torch.Tensor
    # (R, T) log p of the location hard attention sampled at each step (0 where it used the
    # expected context, and after the <end>); None when the attention samples none
    location_log_probs: torch.Tensor | None

    def hypotheses(self) -> list[Hypothesis]:
        return _collect(self.words, self.alphas, self.score, self.log_prob, self.word_log_probs)


def walk(decoder: Decoder, features: torch.Tensor, max_length: int,
         choose: Callable[[torch.Tensor], torch.Tensor],
         adjust: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
         hard_mode: str | None = None, temperature: float | None = None,
         samples: int = 1) -> Walk:
    """One word per row per step until every row has said <end> (at most max_length words):
    greedy decoding, sampling, and self-critical training's policy (training.scst).

    adjust(log_probs (R, V), words so far (R, t), logits (R, V)) -> the scores a word is
    chosen from (default: the model's log p, -inf where a word may not come next; repeat
    blocking; a policy's distribution over the allowed words); choose(scores (R, V)) -> (R,)
    word ids picks one (argmax, or a draw). features (B, L, D): rows n*samples ..
    n*samples + samples - 1 are image n's (its memory prepared once). Gradients flow as the
    caller's grad mode says: decoding runs in inference_mode, training differentiates `score`
    and `location_log_probs`."""
    memory = decoder.prepare(features, decoding=True, hard_mode=hard_mode,
                             temperature=temperature)
    state = decoder.init_state(memory)
    rows, device = features.shape[0] * samples, features.device
    if samples > 1:
        state = state.select(torch.arange(features.shape[0], device=device
                                          ).repeat_interleave(samples))
    tokens = torch.full((rows,), START, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    total = torch.zeros(rows, device=device)  # the model's log p
    searched = torch.zeros(rows, device=device)  # under `adjust`: the score
    words, alphas, word_log_probs, locations = [], [], [], []
    for t in range(max_length + 1):  # room for max_length words and the closing <end>
        out = decoder.step(tokens, state, memory)
        log_probs = _next_word_log_probs(out.logits, t, max_length)  # (R, V)
        allowed = log_probs if adjust is None else adjust(
            log_probs, torch.stack(words, 1) if words else tokens.new_empty(rows, 0), out.logits)
        tokens = choose(allowed).masked_fill(finished, END)
        # The model's own log p of the word: what a caption reports, whatever picked it.
        chosen = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        total += chosen
        searched += allowed.gather(1, tokens.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0)
        words.append(tokens)
        word_log_probs.append(chosen)
        alphas.append(out.attention.weights)
        if out.attention.log_prob is not None:
            locations.append(out.attention.log_prob.masked_fill(finished, 0.0))
        finished = finished | (tokens == END)
        state = out.state
        if bool(finished.all()):
            break
    return Walk(torch.stack(words, 1), torch.stack(alphas, 1), torch.stack(word_log_probs, 1),
                total, searched, torch.stack(locations, 1) if locations else None)


def beam_search(decoder: Decoder, features: torch.Tensor, options: DecodeOptions | None = None,
                content_words: torch.Tensor | None = None, **changes
                ) -> list[list[Hypothesis]]:
    """Batched beam search. features (B, L, D) -> for each image its options.n_best hypotheses,
    best first.

    A finished hypothesis stays in the beam and may only be extended by <end> at no cost, so
    every row advances in lockstep. With options.length_penalty > 0 the final ranking divides
    each log-probability by (number of words + 1) ** length_penalty. With block_repeats no
    hypothesis holds the same n-gram of repeat_ngram words twice, and each earlier use of a
    word marked in content_words (V,) costs repeat_penalty.

    An image leaves the batch as soon as its result is settled (without length penalty: its
    n_best-th best finished hypothesis scores at least as high as every live one, which can
    only lose probability), so the remaining steps run on fewer rows, and the search ends
    when the last image is settled instead of after max_length steps.
    """
    options = resolve_options(options, changes)
    beam_size, n_best, max_length = options.beam_size, options.n_best, options.max_length
    length_penalty = options.length_penalty
    batch, k, device = features.shape[0], beam_size, features.device
    repeats = Repeats.rule(options, content_words)
    # one copy per image for its k beams
    memory = decoder.prepare(features, decoding=True, hard_mode=options.hard_mode,
                             temperature=options.attention_temperature)
    state = decoder.init_state(memory).select(
        torch.arange(batch, device=device).repeat_interleave(k))  # (B*k, n)
    vocab = decoder.config.vocab_size
    tokens = torch.full((batch * k,), START, dtype=torch.long, device=device)
    # Only beam 0 is alive at the start; the others would duplicate it.
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    end_only = end_only_scores(vocab, device)
    words, alphas, word_log_probs, finished = Beams.empty(batch * k, features.shape[1], device)
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
        words, alphas, word_log_probs, finished, state = extend_beams(
            Beams(words, alphas, word_log_probs, finished), rows, tokens, out, log_probs)
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


def decode(decoder: Decoder, features: torch.Tensor, options: DecodeOptions | None = None,
           content_words: torch.Tensor | None = None, **changes) -> list[list[Hypothesis]]:
    """Each image's options.n_best hypotheses, best first: beam search, or greedy decoding for
    a beam of one (the same words, faster). The decoding of the app, the CLI, validation and
    evaluate. features (B, L, D) float32; call in inference_mode with the decoder in eval."""
    options = resolve_options(options, changes)
    if options.beam_size == 1:
        return [[h] for h in greedy(decoder, features, options, content_words)]
    return beam_search(decoder, features, options, content_words)


class Beams(NamedTuple):
    """The search's hypotheses so far, one row each."""

    words: torch.Tensor  # (R, t) word ids
    alphas: torch.Tensor  # (R, t, L) each word's attention
    word_log_probs: torch.Tensor  # (R, t) the model's log p of each word
    finished: torch.Tensor  # (R,) True once <end> is written

    @classmethod
    def empty(cls, rows: int, locations: int, device: torch.device) -> "Beams":
        return cls(torch.empty(rows, 0, dtype=torch.long, device=device),
                   torch.empty(rows, 0, locations, device=device),
                   torch.empty(rows, 0, device=device),
                   torch.zeros(rows, dtype=torch.bool, device=device))


def end_only_scores(vocab: int, device: torch.device) -> torch.Tensor:
    """(V,) what a finished hypothesis may be extended by: <end> at no cost, nothing else."""
    scores = torch.full((vocab,), float("-inf"), device=device)
    scores[END] = 0.0
    return scores


def extend_beams(beams: Beams, rows: torch.Tensor, tokens: torch.Tensor, out: StepOutput,
                 log_probs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The new hypotheses: row r continues parent rows[r] with word tokens[r]. Returns words,
    alphas, word log-probabilities, finished and the decoder state, in the new row order."""
    words = torch.cat([beams.words.index_select(0, rows), tokens.unsqueeze(1)], dim=1)
    alphas = torch.cat([beams.alphas.index_select(0, rows),
                        out.attention.weights.index_select(0, rows).unsqueeze(1)], dim=1)
    word_log_probs = torch.cat([beams.word_log_probs.index_select(0, rows),
                                log_probs[rows, tokens].unsqueeze(1)], dim=1)
    finished = beams.finished.index_select(0, rows) | (tokens == END)
    return words, alphas, word_log_probs, finished, out.state.select(rows)


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
    # Out of place: log_softmax's backward needs its output (training walks with gradients).
    # A caption never shows "<unk>" to a user.
    return log_probs.index_fill(1, torch.tensor([PAD, START, UNK], device=logits.device),
                                float("-inf"))


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
