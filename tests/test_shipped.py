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


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_shipped_models_can_write_every_coco_object_word_the_table_names(kind):
    """COCO's categories must be sayable; the table's other words (lion, lemon, lamp) are
    tags only where the model knows them (the tagger skips the rest)."""
    from captioner.object_words import object_words
    vocab = load_checkpoint(DEFAULT_CHECKPOINTS[kind]).vocab
    words = {c.word for c in object_words().classes.values()
             if " " not in c.word and c.category is not None}
    assert words <= set(vocab.stoi), sorted(words - set(vocab.stoi))


def test_shipped_language_model_is_small_and_knows_coco_words():
    from captioner.inference import LANGUAGE_MODEL
    from captioner.language_model import load_language_model
    assert LANGUAGE_MODEL.stat().st_size <= 25_000_000
    raw = torch.load(LANGUAGE_MODEL, map_location="cpu", weights_only=True)
    assert all(w.dtype == torch.float16 for w in raw["weights"].values() if w.is_floating_point())
    saved = load_language_model(LANGUAGE_MODEL)
    assert {"zebra", "giraffe", "pizza", "broccoli", "toilet"} <= set(saved.vocab.stoi)


@pytest.mark.slow
def test_the_cat_example_is_a_cat_with_grounding_and_a_dog_without():
    captioner = Captioner.from_checkpoint(DEFAULT_CHECKPOINTS["soft"])
    cat = [p for p in EXAMPLES if p.name == "chelsea.jpg"]
    grounded = captioner.caption(cat)[0]
    alone = captioner.caption(cat, grounding=False, fusion_weight=0.0)[0]
    assert "cat" in grounded.words and "dog" not in grounded.words
    assert [t.word for t in grounded.tags][0] == "cat" and "cat" in grounded.tagged
    assert "cat" not in alone.words
