"""The training loop every stage shares (training.train, .finetune, .scst): a Stage (what
is trained and how one step goes), `fit` (epochs of steps, validation, checkpoints, logs),
resumable state (progress, RNG streams, last.pt / best.pt) and the run's start and end
(data, output folder, runtime, exit status).

Under torchrun every process runs the loop; rank 0 alone validates and writes.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from captioner.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from captioner.decoder import Decoder
from captioner.decoding import DEFAULT_OPTIONS
from captioner.encoder import preprocessing_for
from captioner.images import ImageError
from captioner.vocab import Vocabulary

from .batches import Batch, epoch_loader
from .captions import caption_records
from .config import StageConfig, config_to_dict
from .data import CaptionDataset, DatasetError, ImageRecord, load_karpathy
from .distributed import Runtime, setup, teardown
from .features import FeaturesOf
from .losses import caption_loss
from .metrics import corpus_bleu4
from .vocab_growth import grow_vocabulary, words_to_add

MIN_FREE_BYTES = 200 * 2**20


class TrainingError(RuntimeError):
    """A run that must stop; the message says why and what was kept."""


# ---------------------------------------------------------------------------------------------
# what a stage is

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


@dataclass
class Stage:
    """One training stage as the shared loop (`fit`) sees it: training on cached features,
    fine-tuning the encoder's top blocks from images (training.finetune), or self-critical
    training (training.scst, its own `step`)."""

    model: torch.nn.Module  # train_step calls model(features, captions, image_of)
    decoder: Decoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    table: list[tuple[int, list[int]]]  # (image row, word ids) of every training caption
    reader: Callable[[list[list[int]], int], Dataset]  # (batches, epoch) -> Dataset of Batches
    features_of: FeaturesOf  # validation images' grids
    encoder: torch.nn.Module | None = None  # trained too: saved into the checkpoints
    # One optimisation step on a batch from `reader`: (batch, progress) -> logged numbers,
    # "sentences" (captions trained on) among them. None: train_step, teacher forcing.
    step: Callable[[NamedTuple, Progress], dict[str, float]] | None = None


def make_stage(module: torch.nn.Module, decoder: Decoder, param_groups: list[dict],
               config: StageConfig, runtime: Runtime, table, reader, features_of,
               encoder: torch.nn.Module | None = None, data_parallel: bool = True) -> Stage:
    """Optimizer, LR schedule and loss scaler for `module`, wrapped in DDP when distributed
    (unless data_parallel=False: a stage that does not train through module.forward averages
    its gradients itself)."""
    optimizer = make_optimizer(param_groups, config)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience)
    if config.compile:
        # The step cell, not the whole forward: its Python loop over time steps would make
        # one graph per caption length.
        decoder.advance = torch.compile(decoder.advance, dynamic=True)
    # DDP broadcasts rank 0's weights at construction and averages gradients in backward.
    model = (DistributedDataParallel(module, device_ids=[runtime.device]
                                     if runtime.device.type == "cuda" else None)
             if runtime.distributed and data_parallel else module)
    return Stage(model, decoder, optimizer, scheduler, runtime.grad_scaler(), table, reader,
                 features_of, encoder)


def make_optimizer(param_groups: list[dict], config: StageConfig) -> torch.optim.Optimizer:
    """config.lr is the default; a group may carry its own (the encoder's, when fine-tuning)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(param_groups, config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(param_groups, config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(param_groups, config.lr, momentum=0.9,
                           weight_decay=config.weight_decay)


# ---------------------------------------------------------------------------------------------
# the loop

@dataclass
class Run:
    """What the parts of `fit` share: the stage, its settings, where it writes, and where
    it is."""

    stage: Stage
    config: StageConfig
    runtime: Runtime
    dataset: CaptionDataset
    vocab: Vocabulary
    log: RunLog
    progress: Progress = field(default_factory=Progress)
    # Captions trained since the last train log line, and when that window began.
    window_start: float = 0.0
    window_captions: int = 0

    @property
    def last_path(self) -> Path:
        return Path(self.config.out) / "last.pt"

    @property
    def best_path(self) -> Path:
        return Path(self.config.out) / "best.pt"

    def at_max_steps(self) -> bool:
        return bool(self.config.max_steps) and self.progress.step >= self.config.max_steps


def fit(stage: Stage, config: StageConfig, runtime: Runtime, dataset: CaptionDataset,
        vocab: Vocabulary, val_records: list[ImageRecord], resumed: Checkpoint | None) -> Path:
    """The loop shared by every stage: epochs of steps, validation, checkpoints, logs.
    Returns the path of the best checkpoint."""
    run = Run(stage, config, runtime, dataset, vocab, RunLog(Path(config.out)))
    if resumed is not None:
        resume(run, resumed)
    else:
        # Different sampling noise (hard attention, dropout) in each process.
        torch.manual_seed(config.seed + runtime.rank)
    if run.at_max_steps():
        if runtime.is_main:
            print(f"{run.last_path} is already at step {run.progress.step} (--max-steps "
                  f"{config.max_steps}): nothing to do", file=sys.stderr)
        return run.best_path
    run.window_start = time.perf_counter()
    while run.progress.epoch < config.epochs:
        epoch_done = train_epoch(run)
        validate_and_keep_best(run, val_records)
        if epoch_done:
            run.progress.epoch += 1
            run.progress.batch_in_epoch = 0
        checkpoint_last(run)
        if runtime.is_main:
            run.log.plot()
        if run.at_max_steps() or early_stop(run):
            break
    return run.best_path


def resume(run: Run, resumed: Checkpoint) -> None:
    """Optimizer, schedule, loss scaler, position and RNG streams as last.pt saved them."""
    stage, training, runtime = run.stage, resumed.training, run.runtime
    stage.optimizer.load_state_dict(training["optimizer"])
    stage.scheduler.load_state_dict(training["scheduler"])
    if "grad_scaler" in training:
        stage.scaler.load_state_dict(training["grad_scaler"])
    run.progress = Progress(**training["progress"])
    restore_rng(training["rng"], runtime, run.config.seed)
    run.progress.batch_in_epoch = rescale_position(
        run.progress.batch_in_epoch, training.get("world_size", 1), runtime.world_size)
    if runtime.is_main:
        run.log.truncate_after(run.progress.step)
        print(f"resumed {run.last_path} at epoch {run.progress.epoch + 1}, step "
              f"{run.progress.step}", file=sys.stderr)


def train_epoch(run: Run) -> bool:
    """The rest of the current epoch's steps (up to --max-steps); True when it is complete."""
    stage, config, runtime, progress = run.stage, run.config, run.runtime, run.progress
    loader, steps_in_epoch = epoch_loader(stage.table, stage.reader, config, runtime,
                                          progress.epoch, progress.batch_in_epoch)
    for batch in loader:
        if stage.step is not None:
            stats = stage.step(batch.to(runtime.device), progress)
        else:
            stats = train_step(stage.model, batch.to(runtime.device), stage.optimizer, config,
                               progress, runtime, stage.scaler)
        progress.step += 1
        progress.batch_in_epoch += 1
        run.window_captions += stats["sentences"] * runtime.world_size
        if progress.step % config.log_every == 0 and runtime.is_main:
            log_train(run, stats)
        if progress.step % config.checkpoint_every == 0:
            checkpoint_last(run)
        if run.at_max_steps():
            break
    return progress.batch_in_epoch >= steps_in_epoch


def log_train(run: Run, stats: dict[str, float]) -> None:
    elapsed = time.perf_counter() - run.window_start
    run.log.write({"type": "train", "step": run.progress.step, "epoch": run.progress.epoch + 1,
                   **stats, "lr": run.stage.optimizer.param_groups[0]["lr"],
                   "captions_per_s": run.window_captions / max(elapsed, 1e-9)})
    run.window_start, run.window_captions = time.perf_counter(), 0


def validate_and_keep_best(run: Run, val_records: list[ImageRecord]) -> None:
    """Validation BLEU-4 (rank 0), the LR schedule and patience, the log, and best.pt."""
    stage, runtime, progress = run.stage, run.runtime, run.progress
    bleu4 = (validate(stage.decoder, val_records, stage.features_of, run.vocab, run.config)
             if runtime.is_main else 0.0)
    bleu4 = runtime.broadcast(bleu4)  # every process steps its scheduler and stops alike
    improved = bleu4 > progress.best_bleu4
    if improved:
        progress.best_bleu4, progress.bad_epochs = bleu4, 0
    else:
        progress.bad_epochs += 1
    stage.scheduler.step(bleu4)
    if runtime.is_main:
        run.log.write({"type": "val", "step": progress.step, "epoch": progress.epoch + 1,
                       "bleu4": bleu4, "best_bleu4": progress.best_bleu4,
                       "lr": stage.optimizer.param_groups[0]["lr"]})
        print(f"epoch {progress.epoch + 1} step {progress.step}: val BLEU-4 "
              f"{100 * bleu4:.2f} (best {100 * progress.best_bleu4:.2f})", file=sys.stderr)
        if improved:
            save_checkpoint(model_checkpoint(run), run.best_path)


def early_stop(run: Run) -> bool:
    if run.progress.bad_epochs < run.config.early_stop_patience:
        return False
    if run.runtime.is_main:
        print(f"early stop: no improvement for {run.progress.bad_epochs} validations",
              file=sys.stderr)
    return True


def checkpoint_last(run: Run) -> None:
    """last.pt with everything --resume needs. Every process's RNG state is gathered (a
    collective: all processes call this)."""
    runtime = run.runtime
    rng_states = runtime.gather(rng_state(runtime.device))
    if runtime.is_main:
        save_last(run, rng_states)
    runtime.barrier()


def model_checkpoint(run: Run) -> Checkpoint:
    progress, stage = run.progress, run.stage
    metadata = {"dataset": run.dataset.name, "epoch": progress.epoch, "step": progress.step,
                "val_bleu4": progress.best_bleu4, "train_config": config_to_dict(run.config),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    decoder = stage.decoder
    encoder = (None if stage.encoder is None else
               {k: v.detach().cpu() for k, v in stage.encoder.backbone.state_dict().items()})
    return Checkpoint(decoder.config, run.vocab,
                      preprocessing_for(decoder.config.encoder, decoder.config.image_size),
                      {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
                      encoder=encoder, metadata=metadata)


def save_last(run: Run, rng_states: list[dict]) -> None:
    checkpoint = model_checkpoint(run)
    checkpoint.training = {
        "progress": vars(run.progress).copy(),
        "optimizer": run.stage.optimizer.state_dict(),
        "scheduler": run.stage.scheduler.state_dict(),
        "grad_scaler": run.stage.scaler.state_dict(),
        "rng": rng_states,  # one per process, in rank order
        "world_size": run.runtime.world_size,
    }
    save_checkpoint(checkpoint, run.last_path)


def train_step(model: torch.nn.Module, batch: Batch, optimizer, config: StageConfig,
               progress: Progress, runtime: Runtime, scaler: torch.amp.GradScaler
               ) -> dict[str, float]:
    """One optimisation step. `model` is the decoder, or its DistributedDataParallel wrapper,
    whose backward averages the gradients of all processes."""
    model.train()
    targets = batch.captions[:, 1:]
    mask = targets != Vocabulary.pad_id
    # Every process divides by the same global word count (see caption_loss).
    words, sentences = runtime.sum(float(mask.sum()), float(len(targets)))
    with runtime.autocast():
        out = model(batch.features, batch.captions, batch.image_of)
    terms = caption_loss(out, targets, mask, doubly_stochastic=config.doubly_stochastic,
                         entropy_weight=config.entropy_weight,
                         reinforce_weight=config.reinforce_weight, baseline=progress.baseline,
                         words_per_process=words / runtime.world_size)
    # One all-reduce: the global batch's log-likelihood (baseline) and whether any process's
    # loss is NaN/inf, so that all processes stop together instead of leaving some waiting.
    ll_sum, nonfinite = runtime.sum(terms.log_likelihood.item() * len(targets),
                                    float(not torch.isfinite(terms.loss)))
    if nonfinite:
        raise TrainingError(f"loss became {terms.loss.item()} at step {progress.step + 1} "
                            f"(epoch {progress.epoch + 1})")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(terms.loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients (a no-op unless fp16)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    # b <- 0.9 b + 0.1 log p(y|s,a), over the global batch so every process keeps the same b;
    # the first batch initialises it instead of pulling from 0.
    ll = ll_sum / sentences
    if progress.baseline_ready:
        decay = config.baseline_decay
        progress.baseline = decay * progress.baseline + (1 - decay) * ll
    else:
        progress.baseline, progress.baseline_ready = ll, True
    return {"sentences": len(targets), "loss": terms.loss.item(), "ce": terms.cross_entropy.item(),
            "doubly_stochastic": terms.doubly_stochastic.item(),
            "reinforce": terms.reinforce.item(), "entropy": terms.entropy.item(),
            "baseline": progress.baseline, "grad_norm": float(grad_norm)}


def validate(decoder: Decoder, records: list[ImageRecord], features_of: FeaturesOf,
             vocab: Vocabulary, config: StageConfig, chunk_size: int = 250) -> float:
    """Corpus BLEU-4 of beam-search captions (no teacher forcing) against the references.
    features_of(records) gives their annotation grids (from the cache, or the encoder)."""
    decoder.eval()
    # The same decoding as evaluate and the app (repeat blocking, length penalty).
    options = DEFAULT_OPTIONS.replace(beam_size=config.val_beam, max_length=config.max_length)
    predictions = caption_records(decoder, vocab, records, features_of, options,
                                  chunk_size=chunk_size)
    references = {r.path: [" ".join(c) for c in r.captions] for r in records}
    return corpus_bleu4(predictions, references)


# ---------------------------------------------------------------------------------------------
# resumable state, logs

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


def check_output_dir(out: Path) -> None:
    """Fail at start-up, not after an hour, when checkpoints could not be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"{out}: output directory is not writable ({exc.strerror})") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise TrainingError(f"{out}: only {free / 2**20:.0f} MB free; checkpoints need at least "
                            f"{MIN_FREE_BYTES / 2**20:.0f} MB")


class RunLog:
    def __init__(self, out: Path):
        self.path = out / "log.jsonl"
        self.out = out

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines from steps that the resumed run will redo."""
        kept = [r for r in self.records() if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        train = [r for r in records if r["type"] == "train"]
        val = [r for r in records if r["type"] == "val"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        # The first stages log their cross-entropy, self-critical training its CIDEr-D reward.
        for key, label in (("ce", "cross-entropy"), ("reward", "CIDEr-D reward of samples")):
            if train and key in train[-1]:
                left.plot([r["step"] for r in train], [r[key] for r in train], label=label)
        left.plot([r["step"] for r in train], [r["loss"] for r in train], label="loss", alpha=0.6)
        left.set_xlabel("step")
        left.legend()
        right.plot([r["step"] for r in val], [100 * r["bleu4"] for r in val], marker="o")
        right.set_xlabel("step")
        right.set_ylabel("val BLEU-4")
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=80)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# a run's start and end

def run_in_runtime(stage: Callable[[StageConfig, Runtime], Path], config: StageConfig) -> Path:
    """Threads, device, precision and (under torchrun) the process group around a stage."""
    torch.set_num_threads(config.threads)
    runtime = setup(config.device, config.precision)
    try:
        best = stage(config, runtime)
        # Every process finishes its stage before any tears the process group down: a rank
        # leaving while another is still in a collective aborted once under load (SIGABRT,
        # "terminate called without an active exception"). Only on success: after an error
        # the others might never arrive.
        runtime.barrier()
        return best
    finally:
        teardown()


def load_data(config: StageConfig, runtime: Runtime
              ) -> tuple[CaptionDataset, list[ImageRecord], list[ImageRecord]]:
    """The dataset and its train / val records; the output folder checked first."""
    if runtime.is_main:
        check_output_dir(Path(config.out))
    dataset = load_karpathy(config.data, config.images or None)
    # COCO's "restval" images are already in "train" (see training.data).
    train_records, val_records = dataset.split("train"), dataset.split("val")
    if not train_records or not val_records:
        raise DatasetError(f"{config.data}: needs both train and val images "
                           f"(found {len(train_records)} train, {len(val_records)} val)")
    if config.val_images:
        val_records = val_records[:config.val_images]
    return dataset, train_records, val_records


def find_resumable(config: StageConfig) -> Checkpoint | None:
    """last.pt to continue from with --resume; refuses to overwrite a run without it."""
    last_path = Path(config.out) / "last.pt"
    if not last_path.exists():
        return None
    if not config.resume:
        raise TrainingError(f"{last_path} exists: pass --resume to continue that run, or "
                            "choose another --out")
    resumed = load_checkpoint(last_path)
    if resumed.training is None:
        raise TrainingError(f"{last_path}: has no training state to resume from")
    return resumed


def starting_checkpoint(config: StageConfig, resumed: Checkpoint | None
                        ) -> tuple[Checkpoint, str]:
    """A later stage's model and its name: last.pt when resuming, else --init (required)."""
    if resumed is not None:
        return resumed, str(Path(config.out) / "last.pt")
    if not config.init:
        raise TrainingError("--init is required: the first-stage checkpoint to start from")
    return load_checkpoint(config.init), config.init


def with_new_words(checkpoint: Checkpoint, name: str, records: list[ImageRecord],
                   min_count: int, runtime: Runtime) -> Checkpoint:
    """An --init checkpoint whose vocabulary has gained the training captions' words (seen at
    least min_count times) it lacked; old word ids and weights unchanged."""
    words = words_to_add(checkpoint.vocab, (c for r in records for c in r.captions), min_count)
    if runtime.is_main:
        shown = ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")
        print(f"{name}: {len(words)} new word(s) of the training captions (--min-word-count "
              f"{min_count}) join its vocabulary of {len(checkpoint.vocab)}"
              + (f" ({shown})" if words else ""), file=sys.stderr)
    return grow_vocabulary(checkpoint, words)


def require_pretrained_encoder(checkpoint: Checkpoint, name: str, advice: str) -> None:
    """Stages on cached features need a checkpoint whose encoder is the pretrained one."""
    if checkpoint.encoder is not None:
        raise TrainingError(f"{name}: carries a fine-tuned encoder, which cached features do "
                            f"not reflect; {advice}")


def run_command(stage: Callable[[StageConfig], Path], config: StageConfig) -> int:
    """A training command's exit status: 2 with one line for a problem the user can fix."""
    try:
        best = stage(config)
    except (DatasetError, ImageError, CheckpointError, TrainingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun, once
        print(f"best checkpoint: {best}")
    return 0
