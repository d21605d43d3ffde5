"""The one model configuration. It travels inside every checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .attention import ATTENTIONS

GATE_KINDS = ("scalar", "channel", "none")
HARD_INFERENCE_KINDS = ("argmax", "expectation")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a captioning model (not how to train it)."""

    # Encoder: a registry name from captioner.encoder.ENCODERS and its square input side.
    # The grid is image_size / 32 per side: 224 -> 7x7, 448 -> 14x14 (the paper's 196 locations).
    encoder: str = "efficientnet_lite0"
    image_size: int = 224
    encoder_dim: int = 1280  # D, channels of one annotation vector a_i
    # Decoder
    vocab_size: int = 0  # filled in from the vocabulary
    # A name from captioner.attention.ATTENTIONS (the variants are described there)
    attention: str = "soft"
    # m in the paper: word embedding and deep-output width. 512, not 256: the deep output
    # squeezes every word through an m-wide tanh, and 512 learns faster (docs/results.md).
    embed_dim: int = 512
    hidden_dim: int = 512  # n in the paper: LSTM state size
    attention_dim: int = 512  # width of the additive (Bahdanau) scoring MLP
    dropout: float = 0.5
    # beta = sigmoid(f_beta(h)): "scalar" as in the paper, "channel", or "none". Attentions
    # scored with h_{t-1} only: Luong's attentional state has no such gate.
    gate: str = "scalar"
    # How hard attention picks its location when decoding, unless a call says otherwise
    # (DecodeOptions.hard_mode): the expected context, as the paper's code scored its hard
    # model, or the most likely cell.
    hard_inference: str = "expectation"
    # Decoding divides the attention scores by this before the softmax (training never does):
    # below 1 the maps are sharper. Chosen on val per model (docs/attention.md); 1 keeps the
    # attention as trained.
    attention_temperature: float = 1.0
    # Luong's input feeding: the attentional state h~_{t-1} is part of the LSTM's input, so the
    # LSTM knows where it looked before. Attentions scored with h_t only.
    input_feeding: bool = True
    # D of local attention: it sees the cells within +-D of its centre (sigma = D / 2).
    local_window: float = 2.0
    # Concepts the decoder reads at every step (captioner.concepts): words with a detector
    # over the grid cells, then words read from the encoder's ImageNet head. Empty: a decoder
    # that reads the grid alone.
    concepts: tuple[str, ...] = ()
    imagenet_concepts: tuple[str, ...] = ()
    # Decode with int8 products (CPU): the decoder's and the caption language model's per-step
    # matrices quantized dynamically (captioner.fused), a quarter of the bytes a step reads.
    # Training and the weights in the file are unchanged; `training.export --quantize` sets it.
    # Off unless measured to keep the captions' scores (docs/performance.md).
    quantized: bool = False

    def __post_init__(self) -> None:
        for name in ("concepts", "imagenet_concepts"):  # lists after a round trip through a file
            words = tuple(getattr(self, name))
            if not all(isinstance(w, str) and w for w in words) or len(set(words)) != len(words):
                raise ValueError(f"{name} must be distinct non-empty words")
            object.__setattr__(self, name, words)
        _check_choice("attention", self.attention, tuple(ATTENTIONS))
        _check_choice("gate", self.gate, GATE_KINDS)
        _check_choice("hard_inference", self.hard_inference, HARD_INFERENCE_KINDS)
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        if self.local_window < 0.5:
            raise ValueError(f"local_window must be at least 0.5 cells, got {self.local_window}")
        if not 0.0 < self.attention_temperature <= 10.0:
            raise ValueError("attention_temperature must be above 0 and at most 10, got "
                             f"{self.attention_temperature}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def concept_count(self) -> int:
        return len(self.concepts) + len(self.imagenet_concepts)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in ("concepts", "imagenet_concepts"):
            values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
