"""Weights derived from a model's own layers for decoding only: lookup tables, products
stacked into one, int8 copies.

A decoding step at beam-search batch sizes multiplies a few rows by every per-step weight
matrix, so on a CPU it waits for memory, not arithmetic: a step costs about the bytes of
weights it reads, plus a fixed price per product. The decoders (captioner.decoder,
captioner.luong) and the caption language model (captioner.language_model) therefore decode
from `StepLayers` derived from their trained layers: the LSTM's word part as a table with one
row per word (a lookup instead of a product), every product over the same input stacked into
one, and, when ModelConfig.quantized asks, those products in int8 (a quarter of the bytes).

Derived weights are never trained and never saved (they are no module's parameters or
buffers, so no state_dict holds them), and `Derived` rebuilds them whenever any parameter of
their module has changed (an optimizer step, load_state_dict, a move to another device), so
they cannot go stale. Teacher forcing and any decoding that needs gradients (self-critical
training) use the layers themselves.
"""
from __future__ import annotations

import threading
import warnings
from typing import Callable, Hashable, NamedTuple, TypeVar

import torch
from torch import nn

T = TypeVar("T")


class StepLayers(NamedTuple):
    """A decoding step's weights, regrouped so that each step reads every matrix once, in as
    few products as possible. What `before` and `after` stack is the owner's layout (each
    owner documents it); `before_parts` and `after_parts` are the widths of their outputs."""

    # (V, 4n): the LSTM's word part E_y W_x^T + b for every word y: a step looks up the row of
    # its previous word instead of multiplying (exact: that word is one of V)
    word_gates: torch.Tensor
    before: nn.Module  # one product over the state the step starts from
    before_parts: tuple[int, ...]
    after: nn.Module | None  # one product over the new LSTM state h_t (None: not used)
    after_parts: tuple[int, ...]
    out: nn.Module  # the output layer


def weights_key(module: nn.Module) -> tuple:
    """Changes whenever any parameter of `module` does: an in-place update (optimizer steps,
    load_state_dict) bumps its version, a replaced tensor has another address. Parameters
    made in inference mode keep no version (nothing can train them): their address alone."""
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version)
                 for p in module.parameters())


class Derived:
    """Values computed from a module's parameters, each rebuilt at first use after any of
    them changed (`weights_key`). Safe to share between threads: a value is built whole and
    stored with one assignment (two threads may both build it once; both results are right).
    Never copied with its module: a copy's parameters live elsewhere and build their own."""

    def __init__(self) -> None:
        self._saved: dict[Hashable, tuple] = {}

    def get(self, module: nn.Module, name: Hashable, build: Callable[[], T]) -> T:
        key = weights_key(module)
        saved = self._saved.get(name)
        if saved is None or saved[0] != key:
            # Normal tensors (not inference tensors), whatever mode the caller decodes in;
            # the parameters' storages are held so that no new tensor can take their address.
            # fork_rng: building makes layers whose default initialisation draws from torch's
            # generator, which would shift a seeded caller's draws (hard attention's samples).
            with torch.inference_mode(False), torch.no_grad(), torch.random.fork_rng(devices=[]):
                saved = (key, build(), [p.detach() for p in module.parameters()])
            self._saved[name] = saved
        return saved[1]

    def __deepcopy__(self, memo: dict) -> "Derived":
        return Derived()

    def __getstate__(self) -> dict:
        return {"_saved": {}}


def can_quantize(weight: torch.Tensor) -> bool:
    """Dynamic int8 products run on the CPU only; on a GPU decoding stays in floating point."""
    return weight.device.type == "cpu"


def stacked_linear(layers: list[nn.Linear], quantized: bool = False) -> nn.Module:
    """One product computing every layer's output, concatenated in order (layers over the
    same input). A single float layer is returned itself (nothing to stack, nothing copied)."""
    if len(layers) == 1 and not quantized:
        return layers[0]
    weight = torch.cat([layer.weight for layer in layers])
    bias = None
    if any(layer.bias is not None for layer in layers):
        bias = torch.cat([layer.bias if layer.bias is not None
                          else layer.weight.new_zeros(layer.out_features) for layer in layers])
    return linear(weight, bias, quantized)


def linear(weight: torch.Tensor, bias: torch.Tensor | None = None,
           quantized: bool = False) -> nn.Module:
    """x -> x W^T + b as a layer of its own (copies of weight and bias), int8 if asked."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                      device=weight.device, dtype=weight.dtype)
    layer.requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return Int8Linear(layer) if quantized else layer


_QUANTIZE_LOCK = threading.Lock()


class Int8Linear(nn.Module):
    """PyTorch's dynamic quantization of one linear layer (torch.ao): int8 weights with one
    scale per output row, and the input quantized to 8 bits on the fly. CPU only.

    For inputs in [-1, 1] only (every int8 product here reads an LSTM state or a tanh). The
    dynamic op quantizes a whole call's input with one scale, from its minimum and maximum, so
    one row's result would depend on the other rows of the call: on the other photos captioned
    with it, or on the other hypotheses of the beam (a caption read again alone would score
    differently). A row holding 1 and -1 is appended to every call, which fixes the scale at
    [-1, 1] whatever else is in the batch, and its output is dropped. An input outside [-1, 1]
    would not be clipped: it would widen the call's range again, and with it bring back the
    dependence on the other rows."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        layer.qconfig = per_channel_dynamic_qconfig
        with _QUANTIZE_LOCK, warnings.catch_warnings():
            # torch 2.14 announces that quantized tensors will move out of torch (to torchao)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            self.product = DynamicQuantizedLinear.from_float(layer)
        anchor = torch.zeros(1 if layer.in_features > 1 else 2, layer.in_features,
                             dtype=layer.weight.dtype, device=layer.weight.device)
        anchor[0, 0] = 1.0
        anchor[-1, -1] = -1.0
        self.register_buffer("anchor", anchor, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
        # The op itself, as the torch.ao module calls it (with its reduce_range), without the
        # module's own call: a decoding step makes five of these calls.
        out = torch.ops.quantized.linear_dynamic(torch.cat([rows, self.anchor]),
                                                 self.product._packed_params._packed_params,
                                                 reduce_range=True)[:len(rows)]
        return out if x.dim() == 2 else out.reshape(*x.shape[:-1], out.shape[-1])
