"""What the encoder itself recognises: its pretrained ImageNet classifier's top labels, named
by timm's bundled ImageNet-1k label descriptions (no download)."""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch


class Label(NamedTuple):
    name: str  # e.g. "Egyptian cat"
    probability: float


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    from timm.data import ImageNetInfo  # the label files ship inside the timm wheel
    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def top_labels(logits: torch.Tensor, k: int = 5) -> list[list[Label]]:
    """(B, 1000) ImageNet logits -> each image's k most probable labels, most probable first."""
    names = imagenet_names()
    if logits.shape[-1] != len(names):
        raise ValueError(f"expected {len(names)} ImageNet classes, got {logits.shape[-1]}")
    probabilities, indices = logits.float().softmax(dim=-1).topk(k, dim=-1)
    return [[Label(names[i], p) for i, p in zip(row_i, row_p)]
            for row_i, row_p in zip(indices.tolist(), probabilities.tolist())]
