"""The shipped models: they load from a clone, fit the size budget, and caption real photos
with attention that moves from word to word."""
from pathlib import Path

import numpy as np
import pytest
import torch

from captioner import Captioner, load_checkpoint
from captioner.inference import DEFAULT_CHECKPOINTS

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "captioner" / "examples").glob("*.jpg"))


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_shipped_model_is_small_half_precision_and_self_contained(kind):
    path = DEFAULT_CHECKPOINTS[kind]
    assert path.stat().st_size <= 25_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    weights = list(raw["decoder"].values()) + list((raw["encoder"] or {}).values())
    assert all(w.dtype == torch.float16 for w in weights if w.is_floating_point())
    assert raw["training"] is None  # no optimizer state travels
    checkpoint = load_checkpoint(path)
    assert checkpoint.config.attention == kind
    assert checkpoint.metadata["dataset"] == "flickr8k"
    # A fine-tuned encoder travels as the changed tensors only, over the packaged weights.
    assert checkpoint.encoder is None or checkpoint.encoder_base == "pretrained"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_shipped_model_captions_photos_differently_and_looks_around(kind):
    captioner = Captioner.from_checkpoint(DEFAULT_CHECKPOINTS[kind])
    captions = captioner.caption(EXAMPLES, beam_size=3)
    assert len(captions) == len(EXAMPLES) >= 4
    assert len({c.text for c in captions}) == len(captions)  # not one caption for every photo
    for caption in captions:
        assert 3 <= len(caption.words) <= 20
        assert not {"<pad>", "<start>", "<end>", "<unk>"} & set(caption.words)
        assert np.allclose(caption.alphas.sum(axis=(1, 2)), 1.0, atol=1e-4)
        looked_at = {int(a.argmax()) for a in caption.alphas}
        assert len(looked_at) >= 2, caption.text  # the attention moves between words
