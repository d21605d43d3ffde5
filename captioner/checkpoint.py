"""Self-contained checkpoint files: config, vocabulary, preprocessing, weights and metadata.

Files are read with torch.load(weights_only=True) only, so a file that carries pickled code
is refused instead of executed. Only regular files up to MAX_CHECKPOINT_BYTES are opened: a
named pipe would block the reader forever, and a device or a huge file would fill memory.
Writes are atomic (temporary file + rename), so a crash mid-write never leaves a damaged
checkpoint behind.
"""
from __future__ import annotations

import os
import pickle
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .files import atomic_write
from .preprocessing import Preprocessing
from .vocab import Vocabulary

FORMAT = "captioner-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "vocab", "preprocessing", "decoder")
ENCODER_BASES = (None, "pretrained")
# Shipped models are about 21 MB; a limit far above any real one still stops a file (or an
# upload) from making the reader load gigabytes into memory.
MAX_CHECKPOINT_BYTES = 512 * 2**20
# O_NONBLOCK: should the path become a FIFO between the stat and the open, opening it does not
# wait for a writer, and the fstat of the open file refuses it.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass
class Checkpoint:
    config: ModelConfig
    vocab: Vocabulary
    preprocessing: Preprocessing
    decoder: dict[str, torch.Tensor]
    # Encoder weights, only when they are not shipped by a package (fine-tuned or user-supplied).
    encoder: dict[str, torch.Tensor] | None = None
    # "pretrained": `encoder` holds only the tensors that differ from the encoder package's
    # pretrained weights (the fine-tuned blocks), which fill in the rest. None: all of them.
    encoder_base: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # dataset, epoch, scores, date, ...
    # Optimizer, scheduler, RNG and data position: present in training's `last` checkpoints.
    training: dict[str, Any] | None = None

    def to_dict(self, half: bool = False) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "vocab": list(self.vocab.itos),
            "preprocessing": self.preprocessing.to_dict(),
            "decoder": _maybe_half(self.decoder, half),
            "encoder": None if self.encoder is None else _maybe_half(self.encoder, half),
            "encoder_base": self.encoder_base,
            "metadata": dict(self.metadata),
            "training": self.training,
        }


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike, half: bool = False) -> None:
    """Write atomically. half=True stores floating-point weights as float16 (shipped models)."""
    data = checkpoint.to_dict(half=half)
    atomic_write(path, lambda f: torch.save(data, f))


def load_checkpoint(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES,
                    name: str | None = None) -> Checkpoint:
    """Read and validate a checkpoint; every problem becomes a CheckpointError naming the file
    (as `name`, default the path: an upload's temporary file is shown by the visitor's name)."""
    name = str(path) if name is None else name
    return checkpoint_from_dict(read_weights_file(path, max_bytes, name), name)


def read_weights_file(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES,
                      name: str | None = None) -> Any:
    """The plain data of a torch.save file, read safely: a regular file under max_bytes,
    weights_only=True (no pickled code runs); every problem is a CheckpointError."""
    path = Path(path)
    name = str(path) if name is None else name
    try:
        _check_regular_file(os.stat(path), name, max_bytes)  # before opening: a FIFO blocks
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise CheckpointError(f"{name}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "rb") as file:
            _check_regular_file(os.fstat(file.fileno()), name, max_bytes)
            raw = torch.load(file, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        detail = _unpickler_message(str(exc))
        found = _unsafe_object(detail)
        if found:
            raise CheckpointError(f"{name}: refused for safety: the file holds objects that are "
                                  f"not plain weights ({found}), which could run code when "
                                  "loaded; checkpoints are untrusted files, read as plain "
                                  "tensors and data only (weights_only=True)") from None
        raise CheckpointError(f"{name}: not a readable PyTorch checkpoint, or a truncated one "
                              f"({torch_message(detail)})") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes reach the unpickler's internals
        # (IndexError, KeyError, struct.error, ...): for the user they all mean the same.
        detail = torch_message(str(exc)) or type(exc).__name__
        raise CheckpointError(f"{name}: not a readable PyTorch checkpoint, or a truncated one "
                              f"({detail})") from None
    return raw


# What the weights-only unpickler says of an object it will not build: a class or function
# (the file would run code if loaded with weights_only=False), named in the first group.
_UNSAFE_OBJECT = (r"GLOBAL (\S+) was not an allowed global",
                  r"unsupported GLOBAL (\S+) whose module \S+ is blocked",
                  r"reduce for unrecognized function (.+)",
                  r"(?:create new object|build) .* but got (?:<class ')?([^'>]+)")
# What torch.load wraps around it, and its closing pointer to the documentation.
_TORCH_DOCS = "\n\nCheck the documentation of torch.load"


def _unpickler_message(text: str) -> str:
    """The weights-only unpickler's own words in torch.load's UnpicklingError, without the
    advice around them (to load with weights_only=False, which is what we refuse to do)."""
    text = text.split(_TORCH_DOCS)[0].split("WeightsUnpickler error:")[-1]
    chunks = [chunk.strip() for chunk in text.split("\n\n") if chunk.strip()]
    return chunks[-1] if chunks else text.strip()


def _unsafe_object(detail: str) -> str | None:
    """The class or function the file would have built, when that is why it was refused."""
    for pattern in _UNSAFE_OBJECT:
        found = re.search(pattern, detail)
        if found:
            return found[1].rstrip(".")
    return None


# torch_message: a longer message loses whole sentences (or lines), never half of one; one
# sentence longer than _ONE_SENTENCE (a list of state dict keys) is cut after a list item.
_MESSAGE_CHARS, _ONE_SENTENCE = 300, 1000
_LEFT_OUT = " [...]"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SENTENCE_END = re.compile(r"\n|(?<=[.!?])\s+(?=[A-Z(`'\"])")


def torch_message(text: str, limit: int = _MESSAGE_CHARS) -> str:
    """An error message from torch, one line for ours: whole when it fits in `limit`
    characters, else its first sentences or lines that do, and " [...]" for the rest."""
    parts = [" ".join(part.split()) for part in _SENTENCE_END.split(_ANSI.sub("", text))]
    parts = [part for part in parts if part]
    if not parts:
        return ""
    kept = parts[0]
    if len(kept) > _ONE_SENTENCE:
        cut = kept.rfind(", ", 0, _ONE_SENTENCE)
        return (kept[:cut + 1] if cut > 0 else kept) + _LEFT_OUT
    for part in parts[1:]:
        if len(kept) + 1 + len(part) > limit:
            return kept + _LEFT_OUT
        kept += " " + part
    return kept


def _check_regular_file(info: os.stat_result, name: str, max_bytes: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{name}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                "a character device" if stat.S_ISCHR(info.st_mode) else
                "a block device" if stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise CheckpointError(f"{name}: is {kind}, not a checkpoint file; refused unread")
    if info.st_size > max_bytes:
        raise CheckpointError(f"{name}: is {_size(info.st_size)}, over the {_size(max_bytes)} "
                              "limit for a checkpoint; refused unread")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def checkpoint_from_dict(raw: Any, name: str = "<checkpoint>") -> Checkpoint:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a captioner checkpoint (no '{FORMAT}' marker)")
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name}: checkpoint format version {raw.get('format_version')!r} "
                              f"is not supported (this code reads version {FORMAT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{name}: checkpoint is missing {', '.join(missing)}")
    try:
        config = ModelConfig.from_dict(raw["config"])
        vocab = Vocabulary(raw["vocab"])
        preprocessing = Preprocessing.from_dict(raw["preprocessing"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{name}: invalid checkpoint contents ({exc})") from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"{name}: the vocabulary has {len(vocab)} words but the model "
                              f"was built for {config.vocab_size}")
    decoder = _float_state(raw["decoder"], name, "decoder")
    embedding = decoder.get("embedding.weight")
    if embedding is None or embedding.shape[0] != len(vocab):
        rows = None if embedding is None else embedding.shape[0]
        raise CheckpointError(f"{name}: the vocabulary ({len(vocab)} words) does not match the "
                              f"decoder weights (embedding has {rows} rows)")
    encoder, encoder_base = raw.get("encoder"), raw.get("encoder_base")
    if encoder_base not in ENCODER_BASES or (encoder_base is not None and encoder is None):
        raise CheckpointError(f"{name}: invalid encoder_base {encoder_base!r}")
    return Checkpoint(config, vocab, preprocessing, decoder,
                      None if encoder is None else _float_state(encoder, name, "encoder"),
                      encoder_base, dict(raw.get("metadata") or {}), raw.get("training"))


# The vocabulary-sized matrices of a shipped decoder (the word embedding and the output layer)
# are stored as int8 rows with a float16 scale per row: a file of a few thousand words then
# stays under 25 MB, and a row's error (at most half a step of 1/127 of its largest weight)
# moves no caption of the examples (tests/test_checkpoint.py).
ROW_QUANTIZED = ("embedding.weight", "out.weight")
ROW_SCALE = ".row_scale"


def _maybe_half(state: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    if not half:
        return dict(state)
    out = {}
    for k, v in state.items():
        if k in ROW_QUANTIZED and v.is_floating_point() and v.dim() == 2:
            scale = (v.float().abs().amax(1, keepdim=True) / 127).clamp_min(1e-12)
            out[k] = torch.round(v.float() / scale).to(torch.int8)
            out[k + ROW_SCALE] = scale.squeeze(1).half()
        else:
            out[k] = v.half() if v.is_floating_point() else v
    return out


def _float_state(state: Any, name: str, part: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name}: the {part} weights are not a state dict of tensors")
    # Shipped checkpoints store float16 (and int8 rows with their scales); compute in float32.
    out = {}
    for k, v in state.items():
        if k.endswith(ROW_SCALE):
            continue
        scale = state.get(k + ROW_SCALE)
        if scale is not None:
            if v.dtype != torch.int8 or v.dim() != 2 or scale.shape != (v.shape[0],):
                raise CheckpointError(f"{name}: {k} has row scales that do not fit it")
            v = v.float() * scale.float().unsqueeze(1)
        out[k] = v.float() if v.is_floating_point() else v
    return out
