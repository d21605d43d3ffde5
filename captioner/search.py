"""The one loop over Decoder.step that every caption comes from.

Beam search, greedy decoding (a beam of one), constrained beam search (a beam per set of tags
used), sampling, self-critical training's policy and reading a given caption (Explain) are
one loop with two pluggable parts:

- rules: what may come next. Each turns the scores of the next word (R, V) into the scores it
  is chosen from: only words a caption may hold, no repeated n-gram, vetoed words barred, a
  tag used at most once, a sampling policy's distribution.
- a picker: which words continue which rows. `Beam` keeps each photo's k best per constraint
  state (photo n, state s, beam j at row (n * S + s) * k + j); `Draw` continues every row with
  one word it draws or is given.

Everything is batched over photos, states and beams with no Python loop over them; a photo
leaves the beam search's batch as soon as its result is settled. Language-model fusion plugs
in as the decoder (captioner.language_model.FusedDecoder has Decoder's step). Callers put the
decoder in eval mode and, for speed, decode in inference_mode; training walks with gradients.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Protocol, Sequence

import torch

from .decoder import Decoder, StepOutput
from .grounding import Grounding
from .options import DEFAULT_OPTIONS, DecodeOptions, resolve_options
from .vocab import Vocabulary

START, END, PAD = Vocabulary.start_id, Vocabulary.end_id, Vocabulary.pad_id
UNK = Vocabulary.unk_id
NEG_INF = float("-inf")


class Hypothesis(NamedTuple):
    tokens: list[int]  # word ids, without <start> and <end>
    # ranking score: log_prob less any repeat penalties, divided by length**length_penalty
    # when asked
    score: float
    log_prob: float  # sum of the log-probabilities of the words and the closing <end>
    alphas: torch.Tensor  # (len(tokens), L) attention weights of each word
    # (len(tokens),) log p of each word given the words before it (how sure the model was)
    word_log_probs: torch.Tensor


def content_word_mask(vocab: Vocabulary, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """(V,) bool: the words DecodeOptions.repeat_penalty applies to."""
    return torch.tensor(vocab.content_words(), device=device)


# ---------------------------------------------------------------------------------------------
# rules: what may come next

class Context(NamedTuple):
    """What a rule may read at step t, for R rows."""

    step: int
    words: torch.Tensor  # (R, t) each row's words so far
    logits: torch.Tensor  # (R, V) the decoder's scores of the next word
    row_state: torch.Tensor  # (R,) each row's constraint state (bit c: tag c used)


class Rule(Protocol):
    def __call__(self, scores: torch.Tensor, context: Context) -> torch.Tensor:
        """scores (R, V) -> the scores the next word is chosen from (-inf: not a candidate)."""

    def select(self, rows: torch.Tensor) -> "Rule":
        """The rule for the rows kept (the beam search's photos still searched)."""


class Speakable(NamedTuple):
    """Never <pad>, <start> or <unk> (a caption never shows "<unk>" to a user); only <end>
    after max_length words."""

    max_length: int

    def __call__(self, scores: torch.Tensor, context: Context) -> torch.Tensor:
        if context.step == self.max_length:
            return torch.full_like(scores, NEG_INF).index_copy_(
                1, torch.tensor([END], device=scores.device), scores[:, END:END + 1])
        # Out of place: log_softmax's backward needs its output (training walks with gradients).
        return scores.index_fill(1, torch.tensor([PAD, START, UNK], device=scores.device),
                                 NEG_INF)

    def select(self, rows: torch.Tensor) -> "Speakable":
        return self


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

    def __call__(self, scores: torch.Tensor, context: Context) -> torch.Tensor:
        words = context.words
        if self.ngram:
            scores = block_repeated_ngrams(scores, words, self.ngram)
        if self.penalty and words.shape[1]:
            uses = torch.zeros_like(scores).scatter_add_(
                1, words, torch.ones_like(words, dtype=scores.dtype))
            scores = scores - self.penalty * uses * self.content_words.to(scores)
        return scores

    def select(self, rows: torch.Tensor) -> "Repeats":
        return self


class Constraints(NamedTuple):
    """The photos' tags and vetoes (captioner.grounding), row by row: a vetoed word is never a
    candidate, and a tag's words are barred where the row has used the tag already."""

    word_bits: torch.Tensor  # (R, V) int64: bit c set where a word satisfies tag c of the photo
    vetoed: torch.Tensor  # (R, V) bool

    def __call__(self, scores: torch.Tensor, context: Context) -> torch.Tensor:
        used_again = (self.word_bits & context.row_state.unsqueeze(1)) != 0
        return scores.masked_fill(self.vetoed | used_again, NEG_INF)

    def select(self, rows: torch.Tensor) -> "Constraints":
        return Constraints(self.word_bits.index_select(0, rows), self.vetoed.index_select(0, rows))


class Policy(NamedTuple):
    """A sampling policy's log-distribution over the words the rules before it allow, from the
    logits so that a barred word gets no gradient at all (self-critical training)."""

    temperature: float = 1.0

    def __call__(self, scores: torch.Tensor, context: Context) -> torch.Tensor:
        allowed = context.logits.float().masked_fill(scores == NEG_INF, NEG_INF)
        return (allowed / self.temperature).log_softmax(dim=-1)

    def select(self, rows: torch.Tensor) -> "Policy":
        return self


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
    return log_probs.masked_fill(repeats > 0, NEG_INF)


# ---------------------------------------------------------------------------------------------
# the rows

class Beams(NamedTuple):
    """The hypotheses so far, one row each."""

    words: torch.Tensor  # (R, t) word ids
    alphas: torch.Tensor  # (R, t, L) each word's attention
    word_log_probs: torch.Tensor  # (R, t) the model's log p of each word (0 after the <end>)
    finished: torch.Tensor  # (R,) True once <end> is written
    # (R, t) log p of the location hard attention sampled at each step (0 where it used the
    # expected context, and after the <end>); None when the attention samples none
    locations: torch.Tensor | None

    @classmethod
    def empty(cls, rows: int, cells: int, device: torch.device) -> "Beams":
        return cls(torch.empty(rows, 0, dtype=torch.long, device=device),
                   torch.empty(rows, 0, cells, device=device),
                   torch.empty(rows, 0, device=device),
                   torch.zeros(rows, dtype=torch.bool, device=device), None)

    def extend(self, parents: torch.Tensor | None, tokens: torch.Tensor, out: StepOutput,
               log_probs: torch.Tensor) -> "Beams":
        """Row r continues row parents[r] (None: itself) with word tokens[r]; log_probs (R, V)
        the model's own, of the step before the choice. The sampled locations' log p is kept
        for rows that continue themselves (a Draw: self-critical training's policy)."""
        before = self if parents is None else self.select(parents)
        alphas, location = out.attention.weights, out.attention.log_prob
        # The model's own log p of the word: what a caption reports, whatever picked it.
        if parents is None:
            chosen = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
        else:
            alphas, location = alphas.index_select(0, parents), None
            chosen = log_probs[parents, tokens]
        chosen = chosen.masked_fill(before.finished, 0.0)
        locations = None
        if location is not None:
            location = location.masked_fill(before.finished, 0.0).unsqueeze(1)
            locations = location if before.locations is None else torch.cat(
                [before.locations, location], dim=1)
        return Beams(torch.cat([before.words, tokens.unsqueeze(1)], dim=1),
                     torch.cat([before.alphas, alphas.unsqueeze(1)], dim=1),
                     torch.cat([before.word_log_probs, chosen.unsqueeze(1)], dim=1),
                     before.finished | (tokens == END), locations)

    def select(self, rows: torch.Tensor) -> "Beams":
        return Beams(*(None if x is None else x.index_select(0, rows) for x in self))


# ---------------------------------------------------------------------------------------------
# pickers: which words continue which rows

class Beam:
    """Each photo's k best hypotheses per constraint state (2**tags states; 1: a plain beam
    search). A finished hypothesis stays in the beam, extended by <end> at no cost, so every
    row advances in lockstep. The result is the best finished hypotheses of the most complete
    state reached (every tag used; else the most tags any hypothesis used), ranked by
    log p / (words + 1) ** length_penalty (by log p alone when 0)."""

    def __init__(self, k: int, states: int, n_best: int, length_penalty: float,
                 word_bits: torch.Tensor | None = None):
        self.k, self.states, self.n_best = k, states, n_best
        self.length_penalty = length_penalty
        self.word_bits = word_bits  # (R, V) per row, with states > 1
        self.rows_per_photo = states * k
        self.collects = True

    def initial_scores(self, batch: int, device: torch.device) -> torch.Tensor:
        # Only state 0's first beam lives at the start; the others would duplicate it.
        scores = torch.full((batch, self.rows_per_photo), NEG_INF, device=device)
        scores[:, 0] = 0.0
        return scores

    def initial_row_state(self, batch: int, device: torch.device) -> torch.Tensor:
        """(R,) the state of each row: positional, rows s*k .. s*k+k-1 of a photo are state s."""
        return torch.arange(self.states, device=device).repeat_interleave(self.k).repeat(batch)

    def pick(self, scores: torch.Tensor, allowed: torch.Tensor, row_state: torch.Tensor,
             step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """-> the new scores (n, P), each new row's parent row (R,) and word (R,)."""
        n, vocab, k = scores.shape[0], allowed.shape[1], self.k
        candidates = (scores.view(-1, 1) + allowed).view(n, -1)
        if self.states == 1:
            scores, flat = candidates.topk(k, dim=1)
        else:
            next_state = (row_state.unsqueeze(1) | self.word_bits).view(n, -1)
            picked = [candidates.masked_fill(next_state != s, NEG_INF).topk(k, dim=1)
                      for s in range(self.states)]  # the best k that land in state s
            scores = torch.stack([p.values for p in picked], 1).view(n, self.rows_per_photo)
            flat = torch.stack([p.indices for p in picked], 1).view(n, self.rows_per_photo)
        offsets = (torch.arange(n, device=scores.device) * self.rows_per_photo).unsqueeze(1)
        return scores, (offsets + flat // vocab).view(-1), (flat % vocab).view(-1)

    def select(self, rows: torch.Tensor) -> "Beam":
        if self.word_bits is None:
            return self
        other = Beam(self.k, self.states, self.n_best, self.length_penalty,
                     self.word_bits.index_select(0, rows))
        return other

    def settled(self, scores: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        """(n,) True where no further step can change a photo's result."""
        finished = finished.view(scores.shape)
        if self.states > 1 or self.length_penalty:
            # a longer caption (or one in a fuller state) may still overtake: wait for all
            return (finished | (scores == NEG_INF)).all(dim=1)
        finished_scores = scores.masked_fill(~finished, NEG_INF)
        nth_finished = finished_scores.topk(self.n_best, dim=1).values[:, -1]
        best_live = scores.masked_fill(finished, NEG_INF).max(dim=1).values
        # Strictly better: a live hypothesis that ties could still end and take the place.
        return finished.all(dim=1) | (nth_finished > best_live)

    def collect(self, beams: Beams, scores: torch.Tensor, row_state: torch.Tensor
                ) -> list[list[Hypothesis]]:
        """Rows of n photos -> each photo's n_best hypotheses, best first."""
        n = scores.shape[0]
        lengths = _lengths(beams.words).float() + 1.0
        searched = scores.reshape(-1)
        ranking = (searched / lengths.pow(self.length_penalty) if self.length_penalty
                   else searched).view(n, -1)
        used = torch.tensor([bin(s).count("1") for s in range(self.states)],
                            device=scores.device)[row_state].view(n, -1)  # tags used per row
        alive = ranking > NEG_INF
        # The most tags any live hypothesis of the photo has used (the accepting state when
        # reached; a photo's count caps it, since its unused bits are never set).
        best_used = used.masked_fill(~alive, -1).amax(dim=1, keepdim=True)
        eligible = alive & (used == best_used)
        order = ranking.masked_fill(~eligible, NEG_INF).argsort(dim=1, descending=True)
        hypotheses = _collect(beams.words, beams.alphas, ranking.view(-1),
                              beams.word_log_probs.sum(dim=1), beams.word_log_probs)
        results = []
        for photo, row in enumerate(order[:, :self.n_best].tolist()):
            results.append([hypotheses[photo * self.rows_per_photo + j] for j in row
                            if bool(eligible[photo, j])])
        return results


class Draw:
    """Every row continues itself with one word: `choose(scores (R, V)) -> (R,)` picks it (a
    draw from the rules' scores, or the word a given caption has there). rows_per_photo rows
    read each photo (several samples of one photo share its memory)."""

    def __init__(self, choose: Callable[[torch.Tensor, int], torch.Tensor],
                 rows_per_photo: int = 1):
        self.choose, self.rows_per_photo = choose, rows_per_photo
        self.collects = False

    def initial_scores(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, self.rows_per_photo, device=device)

    def initial_row_state(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch * self.rows_per_photo, dtype=torch.long, device=device)

    def pick(self, scores: torch.Tensor, allowed: torch.Tensor, row_state: torch.Tensor,
             step: int) -> tuple[torch.Tensor, None, torch.Tensor]:
        tokens = self.choose(allowed, step)
        gained = allowed.gather(1, tokens.unsqueeze(1)).view(scores.shape)
        return scores + gained, None, tokens

    def select(self, rows: torch.Tensor) -> "Draw":
        return self

    def settled(self, scores: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        return finished.view(scores.shape).all(dim=1)


# ---------------------------------------------------------------------------------------------
# the loop

class Walk(NamedTuple):
    """Where a Draw went, row by row (R rows), step by step (T steps)."""

    words: torch.Tensor  # (R, T) the chosen word ids; <end> again after a row's first
    alphas: torch.Tensor  # (R, T, L) attention weights of each step
    word_log_probs: torch.Tensor  # (R, T) the model's log p of each word, 0 after the <end>
    log_prob: torch.Tensor  # (R,) their sum
    # (R,) the sum of the chosen words' scores under what they were chosen from (the model's
    # log p less any repeat penalties, or a sampling policy's log p)
    score: torch.Tensor
    location_log_probs: torch.Tensor | None  # (R, T), as Beams.locations

    def hypotheses(self) -> list[Hypothesis]:
        return _collect(self.words, self.alphas, self.score, self.log_prob, self.word_log_probs)


def unroll(decoder: Decoder, features: torch.Tensor, max_length: int, picker: Beam | Draw,
           rules: Sequence[Rule], hard_mode: str | None = None,
           temperature: float | None = None, concepts: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> list[list[Hypothesis]] | Walk:
    """The loop: step every row, score what may come next by the rules, let the picker
    continue the rows, until every photo is settled (at most max_length words and <end>).
    A Beam picker gives each photo's hypotheses; a Draw picker the Walk of all rows.
    concepts (B, K): the photos' concept probabilities when the caller read them already;
    generator: what sampled hard attention draws from (None: torch's default)."""
    memory = decoder.prepare(features, decoding=True, hard_mode=hard_mode,
                             temperature=temperature, concepts=concepts)
    if generator is not None:
        memory = memory._replace(generator=generator)
    batch, device = features.shape[0], features.device
    per_photo = picker.rows_per_photo
    state = decoder.init_state(memory)
    if per_photo > 1:
        state = state.select(torch.arange(batch, device=device).repeat_interleave(per_photo))
    rows = batch * per_photo
    tokens = torch.full((rows,), START, dtype=torch.long, device=device)
    scores = picker.initial_scores(batch, device)  # (n, per_photo)
    row_state = picker.initial_row_state(batch, device)
    beams = Beams.empty(rows, features.shape[1], device)
    end_only = torch.full((decoder.config.vocab_size,), NEG_INF, device=device)
    end_only[END] = 0.0  # what a finished row may be extended by: <end> at no cost
    photos = torch.arange(batch, device=device)  # original index of each photo still searched
    results: list[list[Hypothesis] | None] = [None] * batch
    for t in range(max_length + 1):  # room for max_length words and the closing <end>
        out = decoder.step(tokens, state, memory)
        log_probs = out.logits.float().log_softmax(dim=-1)  # (R, V) the model's own
        allowed = log_probs
        context = Context(t, beams.words, out.logits, row_state)
        for rule in rules:
            allowed = rule(allowed, context)
        allowed = torch.where(beams.finished.unsqueeze(1), end_only, allowed)
        scores, parents, tokens = picker.pick(scores, allowed, row_state, t)
        beams = beams.extend(parents, tokens, out, log_probs)
        state = out.state if parents is None else out.state.select(parents)
        settled = picker.settled(scores, beams.finished)
        if t == max_length:
            settled = torch.ones_like(settled)
        if not picker.collects:
            if bool(settled.all()):
                break
            continue
        if bool(settled.any()):
            done = settled.nonzero().squeeze(1)
            done_rows = _rows_of(done, per_photo)
            for photo, hypotheses in zip(photos[done].tolist(), picker.collect(
                    beams.select(done_rows), scores[done], row_state[done_rows])):
                results[photo] = hypotheses
            if bool(settled.all()):
                break
            keep = (~settled).nonzero().squeeze(1)
            keep_rows = _rows_of(keep, per_photo)
            photos, scores, tokens = photos[keep], scores[keep], tokens[keep_rows]
            row_state, beams = row_state[keep_rows], beams.select(keep_rows)
            state, memory = state.select(keep_rows), memory.select(keep)
            picker = picker.select(keep_rows)
            rules = [rule.select(keep_rows) for rule in rules]
    if picker.collects:
        return results
    return Walk(beams.words, beams.alphas, beams.word_log_probs, beams.word_log_probs.sum(1),
                scores.view(-1), beams.locations)


def search(decoder: Decoder, features: torch.Tensor, options: DecodeOptions | None = None,
           content_words: torch.Tensor | None = None, grounding: Grounding | None = None,
           concepts: torch.Tensor | None = None, generator: torch.Generator | None = None,
           **changes) -> list[list[Hypothesis]]:
    """Each photo's options.n_best hypotheses, best first: the batched beam search over
    (photo, constraint state, beam), beneath captioner.decoding.Decoding. It reads the search's
    own fields of options (beam_size, n_best, max_length, length_penalty, the repeat rules,
    hard_mode, attention_temperature); what the photo and the language model add (grounding,
    person_floor, fusion_weight, seed) reaches it as `grounding`, the decoder and `generator`,
    which Decoding builds from the same options. features (B, L, D) float32.

    With options.block_repeats no hypothesis holds the same n-gram of repeat_ngram words
    twice, and each earlier use of a word marked in content_words (V,) costs repeat_penalty.
    grounding: the photos' tags (each caption uses each tag once, Anderson et al. 2017's
    constrained beam search) and vetoes. Greedy decoding is a beam of one. Language-model
    fusion: pass the FusedDecoder as `decoder`. The whole of DecodeOptions, with tags and
    vetoes read from the photo, is captioner.decoding.Decoding's."""
    options = resolve_options(options, changes)
    rules: list[Rule] = [Speakable(options.max_length), Repeats.rule(options, content_words)]
    per_photo = options.beam_size
    picker = Beam(options.beam_size, 1, options.n_best, options.length_penalty)
    if grounding is not None and grounding.constrained:
        states = 1 << int(grounding.counts.max())
        photo_of_row = torch.arange(features.shape[0], device=features.device
                                    ).repeat_interleave(states * per_photo)
        word_bits = grounding.word_bits[photo_of_row]
        rules.append(Constraints(word_bits, grounding.vetoed[photo_of_row]))
        picker = Beam(options.beam_size, states, options.n_best, options.length_penalty,
                      word_bits if states > 1 else None)
    return unroll(decoder, features, options.max_length, picker, rules, options.hard_mode,
                  options.attention_temperature, concepts, generator)


def greedy(decoder: Decoder, features: torch.Tensor, options: DecodeOptions | None = None,
           content_words: torch.Tensor | None = None, **changes) -> list[Hypothesis]:
    """The most likely word at every step, one hypothesis per photo: search() with a beam of
    one (options.beam_size and n_best are not used)."""
    options = resolve_options(options, changes).replace(beam_size=1, n_best=1)
    return [hypotheses[0] for hypotheses in search(decoder, features, options, content_words)]


def walk(decoder: Decoder, features: torch.Tensor, max_length: int,
         choose: Callable[[torch.Tensor, int], torch.Tensor], rules: Sequence[Rule] = (),
         samples: int = 1, hard_mode: str | None = None, temperature: float | None = None,
         generator: torch.Generator | None = None) -> Walk:
    """One word per row per step until every row has said <end> (at most max_length words):
    sampling, self-critical training's policy (training.rewards) and reading a given caption
    (Decoding.read). choose(scores (R, V), step) -> (R,) word ids, from the scores `rules`
    leave (none: the model's own log p). features (B, L, D): rows n*samples ..
    n*samples + samples - 1 are image n's. Gradients flow as the caller's grad mode says."""
    return unroll(decoder, features, max_length, Draw(choose, samples), rules, hard_mode,
                  temperature, generator=generator)


def sample(decoder: Decoder, features: torch.Tensor,
           max_length: int = DEFAULT_OPTIONS.max_length, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> list[Hypothesis]:
    """Words drawn from p(y_t | ...)^(1/temperature) among the words a caption may hold;
    log_prob is under the model itself (no repeat blocking: the samples follow the model's
    own distribution)."""
    def draw(scores: torch.Tensor, step: int) -> torch.Tensor:
        probs = (scores / temperature).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return walk(decoder, features, max_length, draw, [Speakable(max_length)]).hypotheses()


def _rows_of(photos: torch.Tensor, per_photo: int) -> torch.Tensor:
    """The row indices of the given photo positions (per_photo consecutive rows each)."""
    return (photos.unsqueeze(1) * per_photo
            + torch.arange(per_photo, device=photos.device)).view(-1)


def _lengths(words: torch.Tensor) -> torch.Tensor:
    """Number of words before the first <end> in each row of (R, T) (T when there is none)."""
    is_end = words == END
    return torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1),
                       torch.full_like(words[:, 0], words.shape[1]))


def _collect(words: torch.Tensor, alphas: torch.Tensor, score: torch.Tensor,
             log_prob: torch.Tensor, word_log_probs: torch.Tensor) -> list[Hypothesis]:
    lengths = _lengths(words).tolist()
    words_list, scores, log_probs = words.tolist(), score.tolist(), log_prob.tolist()
    alphas, word_log_probs = alphas.float().cpu(), word_log_probs.float().cpu()
    return [Hypothesis(words_list[r][:n], scores[r], log_probs[r], alphas[r, :n],
                       word_log_probs[r, :n]) for r, n in enumerate(lengths)]
