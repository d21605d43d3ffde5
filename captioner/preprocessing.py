"""Image preprocessing, declared once and used by training, evaluation, the CLI and the app."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    """RGB image -> float tensor (3, S, S): squash to a square, scale to [0, 1], normalise.

    The image is resized to a square without cropping, so the attention grid covers the whole
    photo and maps back onto it by a plain rescale (the overlays rely on that).
    """

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {image.mode}")
        size = (self.image_size, self.image_size)
        if image.size != size:
            image = image.resize(size, Image.BICUBIC, reducing_gap=3.0)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (S, S, 3)
        tensor = pixels.permute(2, 0, 1).float().div_(255.0)  # (3, S, S)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return tensor.sub_(mean).div_(std)

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self(image) for image in images])  # (B, 3, S, S)

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Preprocessing":
        return cls(int(values["image_size"]), tuple(values["mean"]), tuple(values["std"]))
