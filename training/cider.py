"""CIDEr-D (Vedantam et al. 2015) fast enough to be a training reward.

The arithmetic is pycocoevalcap 1.2's `CiderScorer` (the "CIDEr" of the COCO caption
evaluation, which is CIDEr-D: tf-idf n-gram vectors for n = 1..4, hypothesis counts clipped by
the reference's, a Gaussian length penalty with sigma 6, the mean over n and over references,
times 10). Two things differ, both for self-critical training:

- document frequencies come from one fixed reference corpus (the training captions), given
  once, instead of from the captions being scored;
- each image's reference vectors are computed once, so scoring a sampled caption costs only
  its own n-grams.

Scoring the captions of a whole split with the references of that same split gives exactly
pycocoevalcap's numbers (tests/test_cider.py checks this on real captions).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Mapping, NamedTuple, Sequence

NGRAMS = 4
SIGMA = 6.0


class _Vector(NamedTuple):
    weights: list[dict[tuple[str, ...], float]]  # per n: n-gram -> tf * idf
    norms: list[float]  # per n: Euclidean norm of weights[n]
    length: int  # as pycocoevalcap counts it: the number of bigrams


def ngram_counts(words: Sequence[str]) -> Counter:
    return Counter(tuple(words[i:i + n]) for n in range(1, NGRAMS + 1)
                   for i in range(len(words) - n + 1))


class CiderD:
    """references: image key -> that image's tokenized reference captions (lists of words).
    Document frequencies are counted over these images; each caption scored later is compared
    with the references of its own image."""

    def __init__(self, references: Mapping[Hashable, Sequence[Sequence[str]]]):
        if not references:
            raise ValueError("CIDEr-D needs at least one image's references")
        counts = {key: [ngram_counts(ref) for ref in refs] for key, refs in references.items()}
        frequency: Counter = Counter()
        for refs in counts.values():  # an n-gram counts once per image, however many refs
            frequency.update(set().union(*refs))
        self._log_images = math.log(float(len(references)))
        self._log_frequency = {ngram: math.log(max(1.0, df)) for ngram, df in frequency.items()}
        self._references = {key: [self._vector(c) for c in refs] for key, refs in counts.items()}

    def _vector(self, counts: Counter) -> _Vector:
        weights: list[dict] = [{} for _ in range(NGRAMS)]
        norms = [0.0] * NGRAMS
        length = 0
        for ngram, tf in counts.items():
            n = len(ngram) - 1
            value = tf * (self._log_images - self._log_frequency.get(ngram, 0.0))
            weights[n][ngram] = value
            norms[n] += value * value
            if n == 1:
                length += tf
        return _Vector(weights, [math.sqrt(x) for x in norms], length)

    def score(self, key: Hashable, words: Sequence[str]) -> float:
        """CIDEr-D of one caption (a list of words) against the references of image `key`."""
        hypothesis = self._vector(ngram_counts(words))
        references = self._references[key]
        total = 0.0
        for reference in references:
            penalty = math.exp(-((hypothesis.length - reference.length) ** 2) / (2 * SIGMA ** 2))
            for n in range(NGRAMS):
                ref_weights = reference.weights[n]
                dot = sum(min(value, ref_weights.get(ngram, 0.0)) * ref_weights.get(ngram, 0.0)
                          for ngram, value in hypothesis.weights[n].items())
                if hypothesis.norms[n] and reference.norms[n]:
                    dot /= hypothesis.norms[n] * reference.norms[n]
                total += dot * penalty
        return 10.0 * total / NGRAMS / len(references)
