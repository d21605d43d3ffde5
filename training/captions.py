"""Caption a split: one loop for training's validation and training.evaluate, decoding as the
app does (captioner.decoding.Decoding)."""
from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from captioner.decoding import Decoding
from captioner.options import DEFAULT_OPTIONS, DecodeOptions

from .data import ImageRecord
from .features import FeaturesOf


def caption_records(decoding: Decoding, records: list[ImageRecord], features_of: FeaturesOf,
                    options: DecodeOptions = DEFAULT_OPTIONS, chunk_size: int = 100,
                    progress: str | None = None) -> dict[str, str]:
    """Image path -> caption text, for records taken chunk_size at a time (features_of(chunk)
    gives their grids). The decoder must be in eval mode. progress: a progress bar label."""
    starts = range(0, len(records), chunk_size)
    if progress:
        starts = tqdm(starts, desc=progress, unit="batch", file=sys.stderr)
    captions = {}
    with torch.inference_mode():
        for start in starts:
            chunk = records[start:start + chunk_size]
            decoded = decoding.run(features_of(chunk), options)
            for record, hypotheses in zip(chunk, decoded.hypotheses):
                captions[record.path] = " ".join(decoding.vocab.decode(hypotheses[0].tokens))
    return captions
