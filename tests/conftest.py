"""Shared fixtures: tiny configs, generated photos and throw-away checkpoints. Nothing here
reads ../shared or the network."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from captioner import Checkpoint, build_decoder, ModelConfig, Vocabulary, save_checkpoint
from captioner.attention import ATTENTIONS
from captioner.encoder import preprocessing_for

EXAMPLES = Path(__file__).resolve().parents[1] / "captioner" / "examples"
WORDS = [["a", "red", "square", "on", "grass"], ["a", "blue", "circle", "in", "the", "sky"],
         ["two", "dogs", "run", "on", "the", "beach"], ["a", "man", "rides", "a", "bike"]]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build(WORDS, min_count=1)


def tiny_config(vocab: Vocabulary, attention: str = "soft", **overrides) -> ModelConfig:
    values = dict(vocab_size=len(vocab), encoder_dim=16, embed_dim=12, hidden_dim=20,
                  attention_dim=14, attention=attention, dropout=0.0)
    values.update(overrides)
    return ModelConfig(**values)


def photo(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    """A synthetic RGB photo: coloured background with a shape, different for every seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    draw.ellipse((x0, y0, x0 + width // 3, y0 + height // 3),
                 fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def write_checkpoint(path: Path, vocab: Vocabulary, attention: str = "soft",
                     image_size: int = 128, **overrides) -> Path:
    """A random-weights decoder on the real EfficientNet-Lite0 encoder (1280-d features)."""
    config = ModelConfig(vocab_size=len(vocab), encoder_dim=1280, embed_dim=16, hidden_dim=24,
                         attention_dim=16, attention=attention, image_size=image_size,
                         **overrides)
    decoder = build_decoder(config)
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, image_size),
                               decoder.state_dict(), metadata={"note": "test"}), path)
    return path


@pytest.fixture(params=sorted(ATTENTIONS))
def attention_kind(request) -> str:
    return request.param


@pytest.fixture
def checkpoint_path(tmp_path, vocab, attention_kind) -> Path:
    return write_checkpoint(tmp_path / f"{attention_kind}.pt", vocab, attention_kind)
