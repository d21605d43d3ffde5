"""Training items of a decoder that reads concepts: cached photos with their concept vectors,
and caption text without photos with pseudo-concepts (training.text_concepts).

Rows of the caption table below the cache's size are photos; a row N + g is text group g.
A batch's images are its photos' grids (a share of them zeroed: read from concepts alone) and
a zero grid or another photo's grid for each text group; its concepts are the photos' cross-fitted vectors and the
text groups' draws, which depend only on (seed, epoch, batch), so a resumed run sees the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .batches import Batch, batch_layout
from .features import FeatureCache
from .text_concepts import TextItems, sample_concepts


@dataclass(frozen=True)
class ConceptSource:
    """What the batches draw concepts from."""

    photos: torch.Tensor  # (N, K) each cache row's concept vector
    text: TextItems | None  # caption groups without photos, rows N .. N + G - 1
    positive: torch.Tensor  # (K, Q) score quantiles of photos that hold each concept
    negative: torch.Tensor  # (K, Q) and of photos that do not
    concepts_only: float  # share of photos whose grid is zeroed
    # share of text groups read beside a random training photo's grid instead of zeros: the
    # caption and concepts then disagree with the grid, and the decoder learns that where
    # they disagree the concepts are to be believed (a COCO kitchen's grid looks like
    # nothing Flickr8k captioned; its concepts say "no person, an oven")
    text_grids: float
    seed: int


class ConceptBatches(Dataset):
    def __init__(self, table, batches: list[list[int]], cache: FeatureCache,
                 source: ConceptSource, epoch: int = 0):
        self.table, self.batches, self.cache = table, batches, cache
        self.source, self.epoch = source, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        images, captions, image_of = batch_layout([self.table[j] for j in self.batches[i]])
        rng = np.random.default_rng([self.source.seed, self.epoch, i])
        photos = self.source.photos.shape[0]
        features = torch.zeros(len(images), *self.cache.features.shape[1:])
        concepts = torch.empty(len(images), self.source.photos.shape[1])
        photo_at = [k for k, row in enumerate(images) if row < photos]
        text_at = [k for k, row in enumerate(images) if row >= photos]
        if photo_at:
            rows = [images[k] for k in photo_at]
            keep = rng.random(len(rows)) >= self.source.concepts_only
            grids = self.cache.batch(rows)
            grids[torch.from_numpy(~keep)] = 0.0
            features[photo_at] = grids
            concepts[photo_at] = self.source.photos[rows].float()
        described = torch.zeros(len(images), dtype=torch.bool)
        if photo_at:
            described[photo_at] = torch.from_numpy(keep)
        if text_at:
            groups = [images[k] - photos for k in text_at]
            concepts[text_at] = sample_concepts(self.source.text.truth[groups],
                                                self.source.positive, self.source.negative, rng)
            borrowed = [k for k in text_at if rng.random() < self.source.text_grids]
            if borrowed:
                features[borrowed] = self.cache.batch(
                    sorted(rng.choice(photos, len(borrowed), replace=False).tolist()))
        return Batch(features, captions, image_of, concepts, described)
