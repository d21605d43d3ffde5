"""How far to trust a caption: a small calibrated model of whether it is wrong.

A caption is wrong when it invents someone or something or misses the photo's main object
(training.objects.caption_errors). Word probabilities alone miss most wrong captions (filler
words are likely whatever the photo), so the model also reads what the concepts say against
the caption: a person word where the person detector sees no one, an object named with little
evidence, a sure object left unnamed, and how unlike the training photos the photo is. A
logistic regression over these features gives p(wrong); two thresholds turn it into plain
words.

The model names the features it was fitted on and computes them by name, so a file fitted on
fewer features (the first seven, before names were stored) still works, and a file fitted on a
feature this version does not know is refused with that reason instead of mis-read. Fitted by
`python -m scripts.calibrate_confidence` on photos the concept detectors never saw (COCO dev's
odd-id half and Flickr8k val) and stored in the model file's metadata.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Mapping, NamedTuple, Sequence

import torch

from .concepts import PERSON_WORDS
from .object_words import object_words, word_mentions
from .vocab import FUNCTION_WORDS, plural

# Every feature this version computes, by name. Each is explained where `read` computes it.
FEATURES = ("mean_word_prob", "min_word_prob", "person_unseen", "person_unsaid",
            "weakest_named", "surest_unnamed", "novelty",
            "no_object", "weakest_object", "surest_unnamed_object", "unnamed_object_margin",
            "surest_unnamed_tag", "geomean_word_prob", "caption_length")
# What a stored model without feature names was fitted on (the files before names were stored).
UNNAMED_FEATURES = FEATURES[:7]
VERDICTS = ("probably right", "unsure", "a guess")
# Whatever the thresholds, a caption more likely wrong than right is never "probably right".
NEVER_RIGHT_FROM = 0.5
MAX_REASONS = 3


class CaptionConfidence(NamedTuple):
    verdict: str  # one of VERDICTS
    p_wrong: float  # the calibrated probability that the caption is wrong
    reasons: tuple[str, ...]  # what drove it, in plain words, strongest first


@dataclass(frozen=True)
class Evidence:
    """What the features are computed from, for one caption."""

    words: Sequence[str]
    word_probs: Sequence[float]
    detected: Mapping[str, float]  # the concept detectors' words -> p(concept | photo)
    imagenet: Mapping[str, float]  # ImageNet concepts (the tagger's words) -> p(concept | photo)
    novelty: float  # 1 - cosine similarity of the photo to the nearest training photo centre

    @classmethod
    def of(cls, words: Sequence[str], word_probs: Sequence[float], detected: Sequence[str],
           imagenet: Sequence[str], probs: Sequence[float], novelty: float) -> "Evidence":
        """From a concept reader's row of probabilities (detected concepts first)."""
        return cls(words, word_probs, dict(zip(detected, probs[:len(detected)])),
                   dict(zip(imagenet, probs[len(detected):])), novelty)

    @property
    def concepts(self) -> dict[str, float]:
        """Every concept word's probability; a word that is both reads the ImageNet one."""
        return {**self.detected, **self.imagenet}


class Reading(NamedTuple):
    values: dict[str, float]  # every feature of FEATURES, by name
    # feature -> what it says in plain words, for features whose value is worrying; only the
    # ones that pushed p(wrong) up are shown (ConfidenceModel.judge)
    reasons: dict[str, str]


# Reasons on one subject compete: a user is told the strongest, not three ways of saying it.
_SUBJECT = {"person_unseen": "person", "person_unsaid": "person",
            "weakest_named": "evidence", "weakest_object": "evidence",
            "surest_unnamed": "left out", "surest_unnamed_object": "left out",
            "unnamed_object_margin": "left out", "surest_unnamed_tag": "left out",
            "mean_word_prob": "words", "min_word_prob": "words", "geomean_word_prob": "words",
            "novelty": "novelty", "no_object": "no object", "caption_length": "length"}


def read(evidence: Evidence) -> Reading:
    """Every feature of one caption, and the reasons worth telling a user."""
    probs = list(evidence.word_probs) or [1.0]
    words = list(evidence.words)
    concepts = evidence.concepts
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}

    # The decoder's own doubt: its average word probability, its least sure word, and their
    # geometric mean, which one very unsure word pulls down more than the average does.
    values["mean_word_prob"] = sum(probs) / len(probs)
    values["min_word_prob"] = min(probs)
    values["geomean_word_prob"] = math.exp(sum(math.log(min(max(p, 1e-6), 1.0)) for p in probs)
                                           / len(probs))
    if values["mean_word_prob"] < 0.4:
        reasons["mean_word_prob"] = ("the model was unsure of its words "
                                     f"(on average {values['mean_word_prob']:.0%})")
    if values["geomean_word_prob"] < 0.3:
        reasons["geomean_word_prob"] = ("the model was unsure of its words "
                                        f"(on average {values['geomean_word_prob']:.0%})")
    if words and values["min_word_prob"] < 0.05:
        least = words[min(range(len(words)), key=lambda i: probs[i])]
        reasons["min_word_prob"] = (f"the model was unsure of \"{least}\" "
                                    f"({values['min_word_prob']:.0%})")

    # People: a person word the person detector does not see invents someone; a person the
    # caption leaves out may be the main subject.
    person = concepts.get("person", 0.0)
    says_person = any(w in PERSON_WORDS for w in words)
    values["person_unseen"] = says_person * (1 - person)
    values["person_unsaid"] = (not says_person) * person
    if says_person and person < 0.5:
        reasons["person_unseen"] = f"it names a person, but the person detector gives {person:.0%}"
    if not says_person and person >= 0.5:
        reasons["person_unsaid"] = f"it names no one, but the person detector gives {person:.0%}"

    # Content words against the concepts of the same word: the least supported word named, and
    # the surest concept left unsaid.
    named = [w for w in words if w not in FUNCTION_WORDS and w not in PERSON_WORDS]
    support = {w: max(concepts.get(w, -1.0), concepts.get(_singular(w), -1.0)) for w in named}
    supported = {w: p for w, p in support.items() if p >= 0}
    weakest = min(supported.items(), key=lambda item: item[1], default=(None, 1.0))
    unnamed = {w: p for w, p in concepts.items()
               if w != "person" and w not in words and plural(w) not in words}
    surest = max(unnamed.items(), key=lambda item: item[1], default=(None, 0.0))
    values["weakest_named"] = 1 - weakest[1]
    values["surest_unnamed"] = surest[1]
    if weakest[0] is not None and weakest[1] < 0.3:
        reasons["weakest_named"] = f"little evidence for \"{weakest[0]}\" ({weakest[1]:.0%})"
    if surest[1] >= 0.5:
        reasons["surest_unnamed"] = f"it leaves out \"{surest[0]}\" ({surest[1]:.0%} sure)"

    # The same by COCO object category (CHAIR's synonyms: "puppy" and "dogs" both name dog),
    # the unit in which a caption invents an object or misses the main one. An object's
    # evidence is its best concept word, detected or ImageNet.
    cats = {c for _, c in word_mentions(words)} - {object_words().people}
    best: dict[str, float] = {}
    for source in (evidence.detected, evidence.imagenet):
        for word, p in source.items():
            c = _category(word)
            if c is not None:
                best[c] = max(best.get(c, 0.0), p)
    named_objects = {c: best[c] for c in cats if c in best}
    weakest_object = min(named_objects.items(), key=lambda item: item[1], default=(None, 1.0))
    left_out = {c: p for c, p in best.items() if c not in cats}
    surest_object = max(left_out.items(), key=lambda item: item[1], default=(None, 0.0))
    # No object named: nothing in the caption can be checked, and the main object is missed.
    values["no_object"] = float(not cats)
    values["weakest_object"] = 1 - weakest_object[1]
    values["surest_unnamed_object"] = surest_object[1]
    # How much surer the concepts are of an object left out than of any object named: above 0,
    # the caption is about something other than what the photo most clearly holds.
    values["unnamed_object_margin"] = surest_object[1] - max(named_objects.values(), default=0.0)
    if not cats:
        reasons["no_object"] = "it names no object the detectors could check"
    if weakest_object[0] is not None and weakest_object[1] < 0.3:
        reasons["weakest_object"] = (f"little evidence for \"{weakest_object[0]}\" "
                                     f"({weakest_object[1]:.0%})")
    if surest_object[1] >= 0.5:
        reasons["surest_unnamed_object"] = (f"it leaves out \"{surest_object[0]}\" "
                                            f"({surest_object[1]:.0%} sure)")
        if values["unnamed_object_margin"] > 0 and cats:
            reasons["unnamed_object_margin"] = (
                f"the photo shows \"{surest_object[0]}\" ({surest_object[1]:.0%} sure) more "
                "clearly than anything it names")

    # What the encoder's ImageNet classifier sees that the caption does not say, as a word or
    # as an object: a thing from outside Flickr8k's words that the caption missed.
    tag = max(((w, p) for w, p in evidence.imagenet.items()
               if _category(w) not in cats and w not in words), key=lambda item: item[1],
              default=(None, 0.0))
    values["surest_unnamed_tag"] = tag[1]
    if tag[1] >= 0.5:
        reasons["surest_unnamed_tag"] = f"it leaves out \"{tag[0]}\" ({tag[1]:.0%} sure)"

    # Long captions have more chances to invent something.
    values["caption_length"] = float(len(words))
    if len(words) >= 15:
        reasons["caption_length"] = f"it is long ({len(words)} words)"

    # A photo unlike the training photos is one the concepts were not trained for either.
    values["novelty"] = evidence.novelty
    if evidence.novelty > 0.5:
        reasons["novelty"] = "the photo is unlike the photos it learnt from"
    return Reading(values, reasons)


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression over standardised features, and the thresholds on p(wrong) above
    which a caption is called "unsure" and "a guess"."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    unsure: float
    guess: float
    # Flickr8k's training photos summarised: (C, D) unit-length centres of their mean
    # annotation vectors; novelty is 1 - the best cosine similarity to them.
    centres: torch.Tensor | None = None
    # the names of the features mean, scale and weights belong to, in their order
    features: tuple[str, ...] = UNNAMED_FEATURES

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"the confidence was fitted on features this version does not "
                             f"compute: {', '.join(unknown)}")
        if len(set(self.features)) != len(self.features):
            raise ValueError("a confidence model names each feature once")
        sizes = {len(self.mean), len(self.scale), len(self.weights)}
        if sizes != {len(self.features)} or not 0 <= self.unsure <= self.guess <= 1:
            raise ValueError("a confidence model needs one mean, scale and weight per feature "
                             "and thresholds 0 <= unsure <= guess <= 1")

    def novelty(self, features_grid: torch.Tensor) -> torch.Tensor:
        """(B, L, D) grids -> (B,) 1 - cosine similarity to the nearest training centre."""
        if self.centres is None:
            return torch.zeros(features_grid.shape[0])
        photos = torch.nn.functional.normalize(features_grid.float().mean(1), dim=1)
        return 1 - (photos @ self.centres.float().T).amax(1).cpu()

    def row(self, values: Mapping[str, float]) -> list[float]:
        """The model's features, in its order, from every feature by name."""
        return [values[f] for f in self.features]

    def contributions(self, row: Sequence[float]) -> list[float]:
        """Each feature's push on the log-odds of wrong (positive: towards wrong)."""
        return [w * (v - m) / s for w, v, m, s in zip(self.weights, row, self.mean, self.scale)]

    def p_wrong(self, row: Sequence[float]) -> float:
        z = self.bias + sum(self.contributions(row))
        return 1 / (1 + math.exp(-max(min(z, 40.0), -40.0)))

    def verdict(self, p_wrong: float) -> str:
        if p_wrong >= self.guess:
            return VERDICTS[2]
        return VERDICTS[1] if p_wrong >= min(self.unsure, NEVER_RIGHT_FROM) else VERDICTS[0]

    def judge(self, evidence: Evidence) -> CaptionConfidence:
        reading = read(evidence)
        row = self.row(reading.values)
        p = self.p_wrong(row)
        verdict = self.verdict(p)
        if verdict == VERDICTS[0]:
            return CaptionConfidence(verdict, p, ())
        # The reasons are the worrying features that pushed p(wrong) up, strongest first, one
        # per subject.
        pushes = sorted(((c, f) for c, f in zip(self.contributions(row), self.features)
                         if c > 0 and f in reading.reasons), reverse=True)
        told: dict[str, str] = {}
        for _, f in pushes:
            told.setdefault(_SUBJECT[f], reading.reasons[f])
        return CaptionConfidence(verdict, p, tuple(told.values())[:MAX_REASONS])

    def to_dict(self) -> dict:
        values = asdict(self)
        values["centres"] = None if self.centres is None else self.centres.half()
        values["features"] = list(self.features)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ConfidenceModel":
        """The stored model; raises ValueError (saying why) for one this version cannot use.
        A dict without feature names was fitted on UNNAMED_FEATURES."""
        values = dict(values)
        unknown = set(values) - {f.name for f in fields(cls)}
        missing = {"mean", "scale", "weights", "bias", "unsure", "guess"} - set(values)
        if unknown or missing:
            raise ValueError("the stored confidence does not fit this version: "
                             + "; ".join(f"{what}: {', '.join(sorted(keys))}" for what, keys in
                                         (("unknown fields", unknown), ("missing", missing))
                                         if keys))
        for key in ("mean", "scale", "weights"):
            values[key] = tuple(float(v) for v in values[key])
        if "features" in values:
            values["features"] = tuple(str(f) for f in values["features"])
        if values.get("centres") is not None:
            values["centres"] = torch.as_tensor(values["centres"]).float()
        return cls(**values)


@lru_cache(maxsize=None)
def _category(word: str) -> str | None:
    """The COCO object category a concept word names, if any (people aside)."""
    mentions = word_mentions([word])
    category = mentions[0][1] if mentions else None
    return None if category == object_words().people else category


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word
