"""The training loop every stage shares (training.train, .finetune, .scst): a Stage (what is
trained, on what, and how one step goes, built whole by its stage module) and `fit` (epochs of
steps, validation, the LR schedule, early stopping, checkpoints and log lines). What the run
keeps to resume from is training.checkpoints, its log and curves training.runlog, its start
and end training.runner.

Under torchrun every process runs the loop; rank 0 alone validates and writes.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from captioner.checkpoint import Checkpoint, save_checkpoint
from captioner.decoder import Decoder
from captioner.decoding import Decoding
from captioner.options import MODEL_ALONE
from captioner.vocab import Vocabulary

from .batches import Batch, epoch_loader
from .captions import caption_records
from .checkpoints import Progress, model_checkpoint, restore_training, rng_state, training_state
from .config import StageConfig
from .data import ImageRecord
from .distributed import Runtime
from .export import shipped
from .features import FeaturesOf
from .losses import caption_loss
from .metrics import corpus_bleu4
from .optimizers import OPTIMIZERS
from .runlog import RunLog


class TrainingError(RuntimeError):
    """A run that must stop; the message says why and what was kept."""


# ---------------------------------------------------------------------------------------------
# what a stage is

# One optimisation step: (stage, a batch from its reader, progress) -> the numbers logged,
# "sentences" (captions trained on) among them.
Step = Callable[["Stage", Any, Progress], dict[str, float]]


class StageData(NamedTuple):
    """What a stage trains and validates on."""

    # One entry per training item: (image row, a caption's word ids, or SCST's (record,)).
    table: list[tuple[int, Any]]
    reader: Callable[[list[list[int]], int], Dataset]  # (batches, epoch) -> Dataset of batches
    features_of: FeaturesOf  # validation images' grids


@dataclass
class Stage:
    """One training stage as `fit` sees it, built whole by its module: teacher forcing on
    cached features (training.train), fine-tuning the encoder's top blocks from images
    (training.finetune), or self-critical training (training.scst), each with its step."""

    config: StageConfig  # what the checkpoints record
    runtime: Runtime
    vocab: Vocabulary
    decoder: Decoder
    data: StageData
    step: Step
    model: torch.nn.Module  # what the step trains: the decoder (with the encoder), maybe in DDP
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    encoder: torch.nn.Module | None = None  # trained too: saved into the checkpoints
    summary: str = ""  # the line a run prints when it starts
    # (V,) the concept whose map supervises each word's attention (-1: none), for a decoder
    # that reads concepts and a stage with --attention-supervision; else None.
    word_concepts: torch.Tensor | None = None


def make_stage(config: StageConfig, runtime: Runtime, vocab: Vocabulary, decoder: Decoder,
               data: StageData, step: Step, *, model: torch.nn.Module | None = None,
               param_groups: list[dict] | None = None, encoder: torch.nn.Module | None = None,
               data_parallel: bool = True, summary: str = "",
               word_concepts: torch.Tensor | None = None) -> Stage:
    """A stage whose step trains `model` (default: the decoder) on `param_groups` (default:
    the decoder's parameters): its optimizer, LR schedule and loss scaler, and the model in
    DDP when distributed (unless data_parallel=False: a step that does not train through
    model.forward averages its gradients itself)."""
    module = decoder if model is None else model
    optimizer = make_optimizer(param_groups or [{"params": decoder.parameters()}], config)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience)
    if config.compile:
        # The step cell, not the whole forward: its Python loop over time steps would make
        # one graph per caption length.
        decoder.advance = torch.compile(decoder.advance, dynamic=True)
    if runtime.distributed and data_parallel:
        # DDP broadcasts rank 0's weights at construction and averages gradients in backward.
        module = DistributedDataParallel(module, device_ids=[runtime.device]
                                         if runtime.device.type == "cuda" else None)
    return Stage(config, runtime, vocab, decoder, data, step, module, optimizer, scheduler,
                 runtime.grad_scaler(), encoder, summary, word_concepts)


def make_optimizer(param_groups: list[dict], config: StageConfig) -> torch.optim.Optimizer:
    """config.lr is the default; a group may carry its own (the encoder's, when fine-tuning)."""
    return OPTIMIZERS[config.optimizer](param_groups, config.lr, config.weight_decay)


def teacher_forcing(stage: Stage, batch: Batch, progress: Progress) -> dict[str, float]:
    """The first stages' step (training.train, training.finetune): train_step on the model."""
    supervision = None
    if stage.word_concepts is not None and getattr(stage.config, "attention_supervision", 0):
        supervision = AttentionSupervision(stage.decoder, stage.word_concepts,
                                           stage.config.attention_supervision)
    return train_step(stage.model, batch, stage.optimizer, stage.config, progress, stage.runtime,
                      stage.scaler, supervision)


# ---------------------------------------------------------------------------------------------
# the loop

@dataclass
class Run:
    """What the parts of `fit` share: the stage, where it writes, and where it is."""

    stage: Stage
    dataset: str  # the dataset's name, recorded in the checkpoints
    log: RunLog
    progress: Progress = field(default_factory=Progress)
    # Captions trained since the last train log line, and when that window began.
    window_start: float = 0.0
    window_captions: int = 0

    @property
    def last_path(self) -> Path:
        return Path(self.stage.config.out) / "last.pt"

    @property
    def best_path(self) -> Path:
        return Path(self.stage.config.out) / "best.pt"

    @property
    def model_path(self) -> Path:
        """best.pt as a shipped file: float16, no training state (what the app uploads)."""
        return Path(self.stage.config.out) / "model.pt"

    def at_max_steps(self) -> bool:
        max_steps = self.stage.config.max_steps
        return bool(max_steps) and self.progress.step >= max_steps


def fit(stage: Stage, dataset: str, val_records: list[ImageRecord],
        resumed: Checkpoint | None) -> Path:
    """The loop shared by every stage: epochs of steps, validation, checkpoints, logs.
    Returns the path of the best checkpoint."""
    config, runtime = stage.config, stage.runtime
    run = Run(stage, dataset, RunLog(Path(config.out)))
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
    """Continue where last.pt stopped; its log loses the lines of the steps to be redone."""
    stage = run.stage
    run.progress = restore_training(resumed.training, stage.optimizer, stage.scheduler,
                                    stage.scaler, stage.runtime, stage.config.seed)
    if stage.runtime.is_main:
        run.log.truncate_after(run.progress.step)
        print(f"resumed {run.last_path} at epoch {run.progress.epoch + 1}, step "
              f"{run.progress.step}", file=sys.stderr)


def train_epoch(run: Run) -> bool:
    """The rest of the current epoch's steps (up to --max-steps); True when it is complete."""
    stage, progress = run.stage, run.progress
    config, runtime = stage.config, stage.runtime
    loader, steps_in_epoch = epoch_loader(stage.data.table, stage.data.reader, config, runtime,
                                          progress.epoch, progress.batch_in_epoch)
    for batch in loader:
        stats = stage.step(stage, batch.to(runtime.device), progress)
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
    """Validation BLEU-4 (rank 0), the LR schedule and patience, the log, and best.pt with
    its model.pt."""
    stage, progress = run.stage, run.progress
    runtime = stage.runtime
    bleu4 = (validate(stage.decoder, val_records, stage.data.features_of, stage.vocab)
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
            best = saved_model(run)
            save_checkpoint(best, run.best_path)
            save_checkpoint(shipped(best), run.model_path, half=True)


def early_stop(run: Run) -> bool:
    if run.progress.bad_epochs < run.stage.config.early_stop_patience:
        return False
    if run.stage.runtime.is_main:
        print(f"early stop: no improvement for {run.progress.bad_epochs} validations",
              file=sys.stderr)
    return True


def checkpoint_last(run: Run) -> None:
    """last.pt with everything --resume needs. Every process's RNG state is gathered (a
    collective: all processes call this)."""
    stage = run.stage
    runtime = stage.runtime
    rng_states = runtime.gather(rng_state(runtime.device))
    if runtime.is_main:
        checkpoint = saved_model(run)
        checkpoint.training = training_state(stage.optimizer, stage.scheduler, stage.scaler,
                                             run.progress, rng_states, runtime.world_size)
        save_checkpoint(checkpoint, run.last_path)
    runtime.barrier()


def saved_model(run: Run) -> Checkpoint:
    stage = run.stage
    return model_checkpoint(stage.decoder, stage.vocab, stage.encoder, run.dataset, run.progress,
                            stage.config)


# ---------------------------------------------------------------------------------------------
# the teacher-forcing step, validation

class AttentionSupervision(NamedTuple):
    """Attention trained to land on what its word names (Liu et al. 2017, with targets from
    the concepts instead of human boxes): at each step whose word names a concept, on a photo
    read with its grid, KL(target || alpha_t), the target the concept's map over the cells
    (its detector's cells, or the class activation map of its ImageNet classes). For hard
    attention alpha_t is the distribution its location is sampled from: a supervised loss on
    the policy, exact and of low variance, where a reward would only reach it through
    REINFORCE's noisy estimate."""

    decoder: Decoder
    word_concepts: torch.Tensor  # (V,) concept index per word, -1: none
    weight: float

    def loss(self, batch: Batch, alphas: torch.Tensor, targets: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed KL over the supervised steps, and how many there were."""
        with torch.no_grad():
            maps = self.decoder.concept_reader(batch.features).maps  # (I, L, K)
            has_grid = (batch.features.flatten(1).abs().amax(1) > 0 if batch.described is None
                        else batch.described)  # (I,) the grid its captions describe
        concept = self.word_concepts[targets]  # (B, T)
        used = (concept >= 0) & mask & has_grid[batch.image_of].unsqueeze(1)
        rows, steps = used.nonzero(as_tuple=True)
        if not len(rows):
            return alphas.new_zeros(()), 0
        target = maps[batch.image_of[rows], :, concept[rows, steps]]  # (N, L)
        alpha = alphas[rows, steps].clamp_min(1e-12)
        kl = (target * (target.clamp_min(1e-12).log() - alpha.log())).sum(1)
        return kl.sum(), len(rows)


def train_step(model: torch.nn.Module, batch: Batch, optimizer, config: StageConfig,
               progress: Progress, runtime: Runtime, scaler: torch.amp.GradScaler,
               supervision: AttentionSupervision | None = None) -> dict[str, float]:
    """One optimisation step. `model` is the decoder, or its DistributedDataParallel wrapper,
    whose backward averages the gradients of all processes."""
    model.train()
    targets = batch.captions[:, 1:]
    mask = targets != Vocabulary.pad_id
    # Every process divides by the same global word count (see caption_loss).
    words, sentences = runtime.sum(float(mask.sum()), float(len(targets)))
    with runtime.autocast():
        if batch.concepts is None:
            out = model(batch.features, batch.captions, batch.image_of)
        else:
            out = model(batch.features, batch.captions, batch.image_of, concepts=batch.concepts)
    terms = caption_loss(out, targets, mask, doubly_stochastic=config.doubly_stochastic,
                         entropy_weight=config.entropy_weight,
                         reinforce_weight=config.reinforce_weight, baseline=progress.baseline,
                         words_per_process=words / runtime.world_size)
    # One all-reduce: the global batch's log-likelihood (baseline) and whether any process's
    # loss is NaN/inf, so that all processes stop together instead of leaving some waiting.
    loss, attention_kl = terms.loss, 0.0
    if supervision is not None:
        kl_sum, supervised = supervision.loss(batch, out.alphas, targets, mask)
        loss = loss + supervision.weight * kl_sum / (words / runtime.world_size)
        attention_kl = kl_sum.item() / max(supervised, 1)
    ll_sum, nonfinite = runtime.sum(terms.log_likelihood.item() * len(targets),
                                    float(not torch.isfinite(loss)))
    if nonfinite:
        raise TrainingError(f"loss became {terms.loss.item()} at step {progress.step + 1} "
                            f"(epoch {progress.epoch + 1})")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
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
    return {"sentences": len(targets), "loss": loss.item(), "ce": terms.cross_entropy.item(),
            "attention_kl": attention_kl,
            "doubly_stochastic": terms.doubly_stochastic.item(),
            "reinforce": terms.reinforce.item(), "entropy": terms.entropy.item(),
            "baseline": progress.baseline, "grad_norm": float(grad_norm)}


def validate(decoder: Decoder, records: list[ImageRecord], features_of: FeaturesOf,
             vocab: Vocabulary, chunk_size: int = 250) -> float:
    """Corpus BLEU-4 of beam-search captions (no teacher forcing) against the references.
    features_of(records) gives their annotation grids (from the cache, or the encoder)."""
    decoder.eval()
    # The decoding of evaluate and the app, with the decoder being trained on its own (no
    # tags: no classifier here; no language model): a run is chosen on what it learnt.
    predictions = caption_records(Decoding(decoder, vocab), records, features_of, MODEL_ALONE,
                                  chunk_size=chunk_size)
    references = {r.path: [" ".join(c) for c in r.captions] for r in records}
    return corpus_bleu4(predictions, references)
