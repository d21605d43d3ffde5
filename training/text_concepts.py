"""Caption text without photos, as training items for a decoder that reads concepts.

COCO's captions (../shared/data/coco_text) talk about kitchens, bathrooms, food and animals
that Flickr8k's photos never show. Each COCO photo's captions become one text-only item: no
grid (the decoder attends over zeros and learns nothing of where), and concepts that its
captions' words imply, each drawn from the detectors' own score distribution on photos that
hold the concept or that do not (training.concepts' quantiles), so "toilet, sink" reads as the
noisy evidence a real bathroom photo would give (DCC, Hendricks et al. 2016; DNOC, Wu et al.
2018: text through the same interface as photos).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from captioner.vocab import tokenize

from .concepts import labels

MAX_WORDS = 20  # longer captions are left out, as the photos' captions longer than this


@dataclass(frozen=True)
class TextItems:
    """Caption groups (one per COCO photo) as token lists, and their concept labels."""

    captions: list[list[list[str]]]
    truth: torch.Tensor  # (G, K) 1 where a group's captions use concept k

    def __len__(self) -> int:
        return len(self.captions)


class TextDataError(ValueError):
    pass


def load_caption_text(path: str | Path) -> list[list[list[str]]]:
    """captions.jsonl ({"image_id", "caption"} a line) -> tokenised captions grouped by photo."""
    path = Path(path)
    if not path.is_file():
        raise TextDataError(f"{path}: no such caption text file")
    groups: dict[int, list[list[str]]] = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            words = tokenize(entry["caption"])
            image = int(entry["image_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TextDataError(f"{path}:{number}: not a caption line ({exc})") from None
        if 0 < len(words) <= MAX_WORDS:
            groups.setdefault(image, []).append(words)
    return [groups[k] for k in sorted(groups)]


def new_words(groups: Sequence[Sequence[Sequence[str]]], known: set[str], min_count: int
              ) -> list[str]:
    """Words the text uses at least min_count times that `known` lacks, most frequent first."""
    counts = Counter(w for group in groups for caption in group for w in caption)
    return sorted((w for w, n in counts.items() if n >= min_count and w not in known
                   and w.isalpha()), key=lambda w: (-counts[w], w))


def text_items(groups: list[list[list[str]]], concepts: Sequence[str]) -> TextItems:
    return TextItems(groups, labels(groups, concepts))


def sample_concepts(truth: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                    rng: np.random.Generator) -> torch.Tensor:
    """Pseudo-concepts (G, K): each concept's score drawn from its positive or negative
    score distribution (quantiles (K, Q), linearly interpolated) by the group's truth."""
    groups, count = truth.shape
    quantile_count = positive.shape[1]
    u = torch.from_numpy(rng.random((groups, count))).float() * (quantile_count - 1)
    low = u.floor().long().clamp_max(quantile_count - 2)
    frac = u - low
    out = torch.empty(groups, count)
    for table, where in ((positive, truth > 0), (negative, truth == 0)):
        t = table.unsqueeze(0).expand(groups, -1, -1)
        a = t.gather(2, low.unsqueeze(2)).squeeze(2)
        b = t.gather(2, (low + 1).unsqueeze(2)).squeeze(2)
        value = a + frac * (b - a)
        out[where] = value[where]
    return out
