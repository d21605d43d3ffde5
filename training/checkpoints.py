"""What a run keeps to resume from: where it is (Progress), the model checkpoint that best.pt
and last.pt hold, last.pt's training state (optimizer, LR schedule, loss scaler, every
process's RNG streams) and putting that state back with --resume."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

import torch

from captioner.checkpoint import Checkpoint
from captioner.decoder import Decoder
from captioner.encoder import preprocessing_for
from captioner.vocab import Vocabulary

from .config import StageConfig, config_to_dict
from .distributed import Runtime


@dataclass
class Progress:
    """Where the run is; saved in last.pt so --resume continues exactly here."""

    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained
    step: int = 0
    baseline: float = 0.0  # REINFORCE moving-average baseline b
    best_bleu4: float = -1.0
    bad_epochs: int = 0
    baseline_ready: bool = False


def model_checkpoint(decoder: Decoder, vocab: Vocabulary, encoder: torch.nn.Module | None,
                     dataset: str, progress: Progress, config: StageConfig) -> Checkpoint:
    """The model as best.pt holds it: weights on the CPU with their config, vocabulary,
    preprocessing and (when trained) encoder, and how it was trained."""
    metadata = {"dataset": dataset, "epoch": progress.epoch, "step": progress.step,
                "val_bleu4": progress.best_bleu4, "train_config": config_to_dict(config),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    trained_encoder = (None if encoder is None else
                       {k: v.detach().cpu() for k, v in encoder.backbone.state_dict().items()})
    return Checkpoint(decoder.config, vocab,
                      preprocessing_for(decoder.config.encoder, decoder.config.image_size),
                      {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
                      encoder=trained_encoder, metadata=metadata)


def training_state(optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                   progress: Progress, rng_states: list[dict], world_size: int) -> dict:
    """last.pt's `training`: everything --resume needs besides the model."""
    return {
        "progress": vars(progress).copy(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "grad_scaler": scaler.state_dict(),
        "rng": rng_states,  # one per process, in rank order
        "world_size": world_size,
    }


def restore_training(training: dict, optimizer: torch.optim.Optimizer, scheduler,
                     scaler: torch.amp.GradScaler, runtime: Runtime, seed: int) -> Progress:
    """Optimizer, schedule, loss scaler and RNG streams as last.pt saved them; returns the
    position to continue from."""
    optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    if "grad_scaler" in training:
        scaler.load_state_dict(training["grad_scaler"])
    progress = Progress(**training["progress"])
    restore_rng(training["rng"], runtime, seed)
    progress.batch_in_epoch = rescale_position(
        progress.batch_in_epoch, training.get("world_size", 1), runtime.world_size)
    return progress


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(states: list[dict], runtime: Runtime, seed: int) -> None:
    """Each process continues its own random stream; with a different number of processes
    than the run was saved with, the streams are re-seeded."""
    if len(states) != runtime.world_size:
        random.seed(seed + runtime.rank)
        torch.manual_seed(seed + runtime.rank + 1_000_003 * len(states))
        return
    state = states[runtime.rank]
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], runtime.device)


def rescale_position(batch_in_epoch: int, saved_world: int, world: int) -> int:
    """Batches per process already trained, when resuming with another number of processes.

    The same fraction of the epoch counts as done. Only approximately the same captions: the
    global batches (batch_size x processes) and their order change with the process count,
    so the rest of that epoch may repeat or skip some captions; later epochs are whole.
    With the same number of processes, resume is exact."""
    if saved_world == world:
        return batch_in_epoch
    return batch_in_epoch * saved_world // world


def _as_tuple(value):
    """random.setstate needs tuples; a checkpoint may hand lists back."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
