"""Caption a split: one loop for training's validation and training.evaluate, with the
decoding the app uses (captioner.decoding.decode)."""
from __future__ import annotations

import sys
from typing import Callable

import torch
from tqdm import tqdm

from captioner.constrained import decode_grounded
from captioner.decoder import Decoder
from captioner.decoding import DEFAULT_OPTIONS, DecodeOptions, content_word_mask
from captioner.grounding import Grounding, Tag
from captioner.language_model import FusedDecoder
from captioner.vocab import Vocabulary

from .data import ImageRecord
from .features import FeaturesOf


Grounder = Callable[[torch.Tensor, DecodeOptions], tuple[list[list[Tag]], Grounding | None]]


def caption_records(decoder: Decoder | FusedDecoder, vocab: Vocabulary, records: list[ImageRecord],
                    features_of: FeaturesOf, options: DecodeOptions = DEFAULT_OPTIONS,
                    chunk_size: int = 100, progress: str | None = None,
                    ground: Grounder | None = None) -> dict[str, str]:
    """Image path -> caption text, for records taken chunk_size at a time (features_of(chunk)
    gives their grids). The decoder must be in eval mode. progress: a progress bar label.
    ground: the photos' tags and vetoes from their grids (Captioner.ground), or None."""
    starts = range(0, len(records), chunk_size)
    if progress:
        starts = tqdm(starts, desc=progress, unit="batch", file=sys.stderr)
    captions = {}
    content_words = None
    with torch.inference_mode():
        for start in starts:
            chunk = records[start:start + chunk_size]
            features = features_of(chunk).float()
            if content_words is None:
                content_words = content_word_mask(vocab, features.device)
            grounding = ground(features, options)[1] if ground is not None else None
            results = decode_grounded(decoder, features, options, grounding, content_words)
            for record, hypotheses in zip(chunk, results):
                captions[record.path] = " ".join(vocab.decode(hypotheses[0].tokens))
    return captions
