"""How far to trust a caption: a small calibrated model of whether it is wrong.

A caption is wrong when it invents someone or something or misses the photo's main object
(training.objects.caption_errors). Word probabilities alone miss most wrong captions (filler
words are likely whatever the photo), so the model also reads what the concepts say against
the caption: a person word where the person detector sees no one, an object named with little
evidence, a sure object left unnamed, and how unlike the training photos the photo is. A
logistic regression over these features gives p(wrong); two thresholds turn it into plain
words. Fitted by `python -m scripts.calibrate_confidence` on COCO dev's even half and half of
Flickr8k val, checked on the other halves, and stored in the model file's metadata.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple, Sequence

import torch

from .concepts import PERSON_WORDS
from .vocab import FUNCTION_WORDS, plural

FEATURES = ("mean_word_prob", "min_word_prob", "person_unseen", "person_unsaid",
            "weakest_named", "surest_unnamed", "novelty")
VERDICTS = ("probably right", "unsure", "a guess")


class CaptionConfidence(NamedTuple):
    verdict: str  # one of VERDICTS
    p_wrong: float  # the calibrated probability that the caption is wrong
    reasons: tuple[str, ...]  # what drove it, in plain words


@dataclass(frozen=True)
class Evidence:
    """What the features are computed from, for one caption."""

    words: Sequence[str]
    word_probs: Sequence[float]
    concepts: dict[str, float]  # concept word -> p(concept | photo), detected and ImageNet
    novelty: float  # 1 - cosine similarity of the photo to the nearest training photo centre


def features(evidence: Evidence) -> tuple[list[float], list[str]]:
    """The FEATURES of one caption, and the reasons worth telling a user."""
    probs = list(evidence.word_probs) or [1.0]
    words = list(evidence.words)
    concepts = evidence.concepts
    person = concepts.get("person", 0.0)
    says_person = any(w in PERSON_WORDS for w in words)
    named = [w for w in words if w not in FUNCTION_WORDS and w not in PERSON_WORDS]
    support = {w: max(concepts.get(w, -1.0), concepts.get(_singular(w), -1.0)) for w in named}
    supported = {w: p for w, p in support.items() if p >= 0}
    weakest = min(supported.items(), key=lambda item: item[1], default=(None, 1.0))
    unnamed = {w: p for w, p in concepts.items()
               if w != "person" and w not in words and plural(w) not in words}
    surest = max(unnamed.items(), key=lambda item: item[1], default=(None, 0.0))
    values = [sum(probs) / len(probs), min(probs), says_person * (1 - person),
              (not says_person) * person, 1 - weakest[1], surest[1], evidence.novelty]
    reasons = []
    if says_person and person < 0.5:
        reasons.append(f"it names a person, but the person detector gives {person:.0%}")
    if weakest[0] is not None and weakest[1] < 0.3:
        reasons.append(f"little evidence for \"{weakest[0]}\" ({weakest[1]:.0%})")
    if surest[1] >= 0.5:
        reasons.append(f"it leaves out \"{surest[0]}\" ({surest[1]:.0%} sure)")
    if values[0] < 0.4:
        reasons.append(f"the model was unsure of its words (on average {values[0]:.0%})")
    if evidence.novelty > 0.5:
        reasons.append("the photo is unlike the photos it learnt from")
    return values, reasons


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression over standardised FEATURES, and the thresholds on p(wrong) above
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

    def __post_init__(self) -> None:
        sizes = {len(self.mean), len(self.scale), len(self.weights)}
        if sizes != {len(FEATURES)} or not 0 <= self.unsure <= self.guess <= 1:
            raise ValueError("a confidence model needs one mean, scale and weight per feature "
                             "and thresholds 0 <= unsure <= guess <= 1")

    def novelty(self, features_grid: torch.Tensor) -> torch.Tensor:
        """(B, L, D) grids -> (B,) 1 - cosine similarity to the nearest training centre."""
        if self.centres is None:
            return torch.zeros(features_grid.shape[0])
        photos = torch.nn.functional.normalize(features_grid.float().mean(1), dim=1)
        return 1 - (photos @ self.centres.float().T).amax(1).cpu()

    def p_wrong(self, values: Sequence[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in
                            zip(self.weights, values, self.mean, self.scale))
        return 1 / (1 + math.exp(-max(min(z, 40.0), -40.0)))

    def judge(self, evidence: Evidence) -> CaptionConfidence:
        values, reasons = features(evidence)
        p = self.p_wrong(values)
        verdict = VERDICTS[2] if p >= self.guess else VERDICTS[1] if p >= self.unsure else VERDICTS[0]
        return CaptionConfidence(verdict, p, tuple(reasons) if verdict != VERDICTS[0] else ())

    def to_dict(self) -> dict:
        values = asdict(self)
        values["centres"] = None if self.centres is None else self.centres.half()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ConfidenceModel":
        values = dict(values)
        for key in ("mean", "scale", "weights"):
            values[key] = tuple(float(v) for v in values[key])
        if values.get("centres") is not None:
            values["centres"] = torch.as_tensor(values["centres"]).float()
        return cls(**values)


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word
