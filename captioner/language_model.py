"""A caption language model learnt from text alone, and shallow fusion with a captioner.

The captioner's language side only knows Flickr8k's 30,000 captions (people and dogs
outdoors). A small LSTM language model over Flickr8k's training captions and COCO caption text
(no photos) knows how people talk about kitchens, cats and pizza. Shallow fusion (Gulcehre et
al. 2015) adds its log-probabilities, times a weight chosen on val, to the captioner's at every
step: log p(w) = log p_captioner(w | photo, ...) + weight * log p_lm(w | ...). `FusedDecoder`
offers the decoder's prepare / init_state / step, so greedy, beam and constrained search run
on it unchanged. The two vocabularies are joined by word: a captioner word the language model
lacks gets its <unk> probability. While the decoder steps through its fused StepLayers
(captioner.fused), so does the language model, int8 when the captioner's config is quantized.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from .checkpoint import MAX_CHECKPOINT_BYTES, CheckpointError, read_weights_file, torch_message
from .decoder import Decoder, DecoderState, Memory, StepOutput
from .files import atomic_write
from .fused import Derived, StepLayers, can_quantize, linear, stacked_linear
from .vocab import Vocabulary

FORMAT = "captioner-language-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LanguageModelConfig:
    vocab_size: int
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.vocab_size <= 4:
            raise ValueError("vocab_size must be set from the vocabulary")


class LanguageState(NamedTuple):
    h: torch.Tensor  # (1, B, n)
    c: torch.Tensor  # (1, B, n)

    def select(self, rows: torch.Tensor) -> "LanguageState":
        return LanguageState(self.h.index_select(1, rows), self.c.index_select(1, rows))

    def head(self, rows: int) -> "LanguageState":
        return LanguageState(self.h[:, :rows], self.c[:, :rows])


class LanguageModel(nn.Module):
    """p(w_t | w_<t) over captions that start with <start>: embedding, one LSTM layer, output.

    Its decoding StepLayers (`step_layers`): the LSTM's input part W_ih E_w + b_ih + b_hh as a
    table, `before` is W_hh, `out` the output layer."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_dim, config.vocab_size)
        self.derived = Derived()  # StepLayers, float and int8, rebuilt after any weight change

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V) of each next word (teacher forcing)."""
        hidden, _ = self.lstm(self.dropout(self.embedding(tokens)))
        return self.out(self.dropout(hidden))

    def init_state(self, rows: int, device: torch.device) -> LanguageState:
        zeros = torch.zeros(1, rows, self.config.hidden_dim, device=device)
        return LanguageState(zeros, zeros)

    def step(self, tokens: torch.Tensor, state: LanguageState,
             layers: StepLayers | None = None) -> tuple[torch.Tensor, LanguageState]:
        """tokens (B,) -> log p of the next word (B, V), and the new state; layers: the
        step_layers() to step through (decoding without gradients), None: the LSTM itself."""
        if layers is None:
            hidden, (h, c) = self.lstm(self.embedding(tokens).unsqueeze(1), tuple(state))
            return self.out(hidden.squeeze(1)).float().log_softmax(-1), LanguageState(h, c)
        gates = layers.word_gates.index_select(0, tokens) + layers.before(state.h[0])  # (B, 4n)
        h, c = Decoder.lstm_cell(gates, state.c[0])  # nn.LSTM's gates, in its order i, f, g, o
        return (layers.out(h).float().log_softmax(-1),
                LanguageState(h.unsqueeze(0), c.unsqueeze(0)))

    def step_layers(self, quantized: bool = False) -> StepLayers:
        """The decoding StepLayers (int8 products if asked, on a CPU), built at first use
        after any change of the weights."""
        quantized = quantized and can_quantize(self.out.weight)
        return self.derived.get(self, quantized, lambda: self._build_step_layers(quantized))

    def _build_step_layers(self, quantized: bool) -> StepLayers:
        lstm = self.lstm
        table = (self.embedding.weight @ lstm.weight_ih_l0.T
                 + lstm.bias_ih_l0 + lstm.bias_hh_l0)  # (V, 4n)
        return StepLayers(table, linear(lstm.weight_hh_l0, quantized=quantized),
                          (lstm.weight_hh_l0.shape[0],), None, (),
                          stacked_linear([self.out], quantized))


@dataclass
class LanguageModelFile:
    """A language model with its vocabulary and provenance: one file is enough to use it."""

    model: LanguageModel
    vocab: Vocabulary
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def save_language_model(saved: LanguageModelFile, path: str | os.PathLike,
                        half: bool = False) -> None:
    weights = {k: v.half() if half and v.is_floating_point() else v
               for k, v in saved.model.state_dict().items()}
    data = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(saved.model.config), "vocab": list(saved.vocab.itos),
            "weights": weights, "metadata": dict(saved.metadata)}
    atomic_write(path, lambda f: torch.save(data, f))


def load_language_model(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES
                        ) -> LanguageModelFile:
    """Read and validate a language model file (weights_only); problems are CheckpointErrors."""
    name = str(path)
    raw = read_weights_file(path, max_bytes, name)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a captioner language model (no '{FORMAT}' marker)")
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name}: language model format version "
                              f"{raw.get('format_version')!r} is not {FORMAT_VERSION}")
    try:
        vocab = Vocabulary(raw["vocab"])
        config = LanguageModelConfig(**raw["config"])
        if config.vocab_size != len(vocab):
            raise ValueError(f"{len(vocab)} words but vocab_size {config.vocab_size}")
        with torch.inference_mode(False):  # normal tensors, even when read while decoding
            model = LanguageModel(config)
            model.load_state_dict({k: v.float() for k, v in raw["weights"].items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: damaged language model "
                              f"({torch_message(str(exc))})") from None
    return LanguageModelFile(model.eval(), vocab, dict(raw.get("metadata") or {}))


class FusedState(NamedTuple):
    decoder: DecoderState
    language: LanguageState

    def select(self, rows: torch.Tensor) -> "FusedState":
        return FusedState(self.decoder.select(rows), self.language.select(rows))

    def head(self, rows: int) -> "FusedState":
        return FusedState(self.decoder.head(rows), self.language.head(rows))


class FusedDecoder:
    """A decoder whose next-word scores are shallow-fused with a language model's. Read-only:
    it holds references to the two shared models and changes neither."""

    def __init__(self, decoder: Decoder, language: LanguageModelFile, vocab: Vocabulary,
                 weight: float):
        self.decoder, self.language, self.weight = decoder, language.model, weight
        self.config = decoder.config
        # captioner word id -> language model word id (<unk> where it lacks the word)
        self.word_map = torch.tensor([language.vocab.stoi.get(w, Vocabulary.unk_id)
                                      for w in vocab.itos])

    def with_weight(self, weight: float) -> "FusedDecoder":
        """The same fusion at another weight, sharing the models and the word map."""
        other = copy.copy(self)
        other.weight = weight
        return other

    def prepare(self, features: torch.Tensor, decoding: bool = False,
                hard_mode: str | None = None, temperature: float | None = None,
                concepts: torch.Tensor | None = None) -> Memory:
        return self.decoder.prepare(features, decoding, hard_mode, temperature, concepts)

    def init_state(self, memory: Memory) -> FusedState:
        rows = memory.features.shape[0]
        return FusedState(self.decoder.init_state(memory),
                          self.language.init_state(rows, memory.features.device))

    def step(self, tokens: torch.Tensor, state: FusedState, memory: Memory) -> StepOutput:
        out = self.decoder.step(tokens, state.decoder, memory)
        word_map = self.word_map.to(tokens.device)
        # The language model steps as the decoder does: through fused layers while decoding
        # (int8 with a quantized captioner), else through its LSTM.
        layers = (None if memory.layers is None
                  else self.language.step_layers(self.config.quantized))
        language, language_state = self.language.step(word_map[tokens], state.language,
                                                      layers)
        fused = out.logits.float().log_softmax(-1) + self.weight * language[:, word_map]
        return StepOutput(fused, FusedState(out.state, language_state), out.attention)
