"""Train Show, Attend and Tell on cached encoder features.

    python -m training.train --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --attention soft --out runs/soft
    python -m training.train ... --resume        # continue from runs/soft/last.pt
    torchrun --nproc_per_node=4 -m training.train ... --device cuda --precision bf16

Writes to --out: last.pt (every --checkpoint-every steps and at each epoch end, atomically,
with optimizer/scheduler/RNG/data position), best.pt (best validation BLEU-4), log.jsonl
(one JSON line per logging step and per validation) and curves.png.
"""
from __future__ import annotations

import dataclasses
import json
import random
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from captioner.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from training.data import CaptionDataset, DatasetError, ImageRecord, load_karpathy
from captioner.decoder import Decoder
from captioner.decoding import beam_search
from captioner.encoder import encoder_spec, preprocessing_for
from training.features import FeatureCache
from captioner.images import ImageError
from training.losses import caption_loss
from training.metrics import corpus_bleu4
from captioner.vocab import Vocabulary

from .cache import ensure_cache
from .config import TrainConfig, config_to_dict, parse_config
from .distributed import Runtime, setup, teardown

MIN_FREE_BYTES = 200 * 2**20


class TrainingError(RuntimeError):
    """A run that must stop; the message says why and what was kept."""


class Batch(NamedTuple):  # a NamedTuple, so DataLoader's pin_memory pins every tensor
    features: torch.Tensor  # (I, L, D) each image of the batch once (or its pixels, fine-tuning)
    captions: torch.Tensor  # (B, T+1) <start> w1 .. wn <end> <pad>...
    image_of: torch.Tensor  # (B,) the row of `features` that caption b describes

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(x.to(device, non_blocking=True) for x in self))


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


# ---------------------------------------------------------------------------------------------
# data

def caption_table(records: list[ImageRecord], cache: FeatureCache, vocab: Vocabulary
                  ) -> list[tuple[int, list[int]]]:
    """(cache row, word ids) for every training caption."""
    rows = cache.rows([r.path for r in records])
    return [(row, vocab.encode(caption)) for row, r in zip(rows, records) for caption in r.captions]


def image_batches(table: list[tuple[int, list[int]]], batch_size: int, seed: int, epoch: int,
                  processes: int = 1) -> list[list[int]]:
    """Batches of about batch_size captions that keep an image's captions together, so the
    decoder does each image's own work once for all of them; images in a seeded random order.

    The order depends only on (seed, epoch), so a resumed run sees the same batches. With
    several processes, each global batch of batch_size x processes captions is cut into one
    batch per process, consecutive in the list, so a DistributedSampler (rank r takes items
    r, r + processes, ...) hands each process its part of every global batch, and a run on
    one process with batch_size x processes sees exactly the same global batches.
    """
    rng = random.Random(seed * 100_003 + epoch)
    by_image: dict[int, list[int]] = {}
    for i, (image, _) in enumerate(table):
        by_image.setdefault(image, []).append(i)
    images = list(by_image.values())
    rng.shuffle(images)
    order = [i for captions in images for i in captions]
    size = batch_size * processes
    # An image at a batch boundary has its captions in two batches: each does that image's
    # work once, which costs far less than aligning batches to images would in padding.
    global_batches = [order[i:i + size] for i in range(0, len(order), size)]
    # The last global batch may be short: it is shared out evenly (the loss is normalised by
    # the global batch, so unequal parts are exact), or dropped when it has fewer captions
    # than there are processes (DDP needs every process to take every step).
    return [batch[len(batch) * r // processes:len(batch) * (r + 1) // processes]
            for batch in global_batches if len(batch) >= processes for r in range(processes)]


def pad_captions(captions: list[list[int]]) -> torch.Tensor:
    padded = torch.zeros(len(captions), max(map(len, captions)), dtype=torch.long)
    for i, ids in enumerate(captions):
        padded[i, :len(ids)] = torch.tensor(ids)
    return padded


def batch_layout(rows: list[tuple[int, list[int]]]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(image, word ids) per caption -> the distinct images in order of first use, the padded
    captions and each caption's index into those images."""
    images = list(dict.fromkeys(image for image, _ in rows))
    index = {image: i for i, image in enumerate(images)}
    return (images, pad_captions([ids for _, ids in rows]),
            torch.tensor([index[image] for image, _ in rows]))


class CachedBatches(Dataset):
    """Item i is batch i: its images' features read once from the memory-mapped cache (in
    DataLoader workers if any), captions padded."""

    def __init__(self, table, batches: list[list[int]], cache: FeatureCache):
        self.table, self.batches, self.cache = table, batches, cache

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        images, captions, image_of = batch_layout([self.table[j] for j in self.batches[i]])
        return Batch(self.cache.batch(images), captions, image_of)


def epoch_loader(table, reader: Callable[[list[list[int]]], Dataset], config: TrainConfig,
                 runtime: Runtime, epoch: int, skip: int) -> tuple[DataLoader, int]:
    """This process's batches of `epoch` after the first `skip`, and how many it has in all.

    `reader` turns the epoch's batches (lists of table rows) into a Dataset of Batches.
    DistributedSampler pads the list by repeating batches so that every process takes the
    same number of steps (DDP needs every process in every all-reduce).
    """
    batches = reader(image_batches(table, config.batch_size, config.seed, epoch,
                                      runtime.world_size))
    sampler = DistributedSampler(batches, num_replicas=runtime.world_size, rank=runtime.rank,
                                 shuffle=False)
    mine = list(sampler)
    # Its own generator: a DataLoader otherwise draws a seed from the global RNG, and a
    # resumed run (which creates its loader mid-epoch) would then diverge from an
    # uninterrupted one.
    loader = DataLoader(torch.utils.data.Subset(batches, mine[skip:]), batch_size=None,
                        num_workers=config.loader_workers,
                        pin_memory=runtime.device.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed + epoch))
    return loader, len(mine)


# ---------------------------------------------------------------------------------------------
# training and validation

def train_step(model: torch.nn.Module, batch: Batch, optimizer, config: TrainConfig,
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


def validate(decoder: Decoder, records: list[ImageRecord],
             features_of: Callable[[list[ImageRecord]], torch.Tensor], vocab: Vocabulary,
             config: TrainConfig, chunk_size: int = 250) -> float:
    """Corpus BLEU-4 of beam-search captions (no teacher forcing) against the references.
    features_of(records) gives their annotation grids (from the cache, or the encoder)."""
    decoder.eval()
    predictions, references = {}, {}
    with torch.inference_mode():
        for start in range(0, len(records), chunk_size):
            chunk = records[start:start + chunk_size]
            # The same decoding as evaluate and the app (repeat blocking, length penalty).
            for record, hyps in zip(chunk, beam_search(decoder, features_of(chunk),
                                                       config.val_beam, config.max_length)):
                predictions[record.path] = " ".join(vocab.decode(hyps[0].tokens))
                references[record.path] = [" ".join(c) for c in record.captions]
    return corpus_bleu4(predictions, references)


# ---------------------------------------------------------------------------------------------
# checkpoints, logs

def model_checkpoint(stage: "Stage", vocab: Vocabulary, config: TrainConfig,
                     dataset: CaptionDataset, progress: Progress) -> Checkpoint:
    metadata = {"dataset": dataset.name, "epoch": progress.epoch, "step": progress.step,
                "val_bleu4": progress.best_bleu4, "train_config": config_to_dict(config),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    decoder = stage.decoder
    encoder = (None if stage.encoder is None else
               {k: v.detach().cpu() for k, v in stage.encoder.backbone.state_dict().items()})
    return Checkpoint(decoder.config, vocab,
                      preprocessing_for(decoder.config.encoder, decoder.config.image_size),
                      {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
                      encoder=encoder, metadata=metadata)


def save_last(path: Path, stage: "Stage", vocab, config, dataset, progress, rng_states: list[dict],
              world_size: int) -> None:
    checkpoint = model_checkpoint(stage, vocab, config, dataset, progress)
    checkpoint.training = {
        "progress": vars(progress).copy(),
        "optimizer": stage.optimizer.state_dict(),
        "scheduler": stage.scheduler.state_dict(),
        "grad_scaler": stage.scaler.state_dict(),
        "rng": rng_states,  # one per process, in rank order
        "world_size": world_size,
    }
    save_checkpoint(checkpoint, path)


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

@dataclass
class Stage:
    """One training stage as the shared loop (`fit`) sees it: training on cached features,
    or fine-tuning the encoder's top blocks from images (training.finetune)."""

    model: torch.nn.Module  # train_step calls model(features, captions, image_of)
    decoder: Decoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    table: list[tuple[int, list[int]]]  # (image row, word ids) of every training caption
    reader: Callable[[list[list[int]]], Dataset]  # an epoch's batches -> Dataset of Batches
    features_of: Callable[[list[ImageRecord]], torch.Tensor]  # validation images' grids
    encoder: torch.nn.Module | None = None  # trained too: saved into the checkpoints
    # One optimisation step on a batch from `reader`: (batch, progress) -> logged numbers,
    # "sentences" (captions trained on) among them. None: train_step, teacher forcing.
    step: Callable[[NamedTuple, Progress], dict[str, float]] | None = None


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun every process runs this function; rank 0 alone validates and writes.
    """
    return run_in_runtime(_train, config)


def run_in_runtime(stage: Callable[[TrainConfig, Runtime], Path], config: TrainConfig) -> Path:
    """Threads, device, precision and (under torchrun) the process group around a stage."""
    torch.set_num_threads(config.threads)
    runtime = setup(config.device, config.precision)
    try:
        return stage(config, runtime)
    finally:
        teardown()


def _train(config: TrainConfig, runtime: Runtime) -> Path:
    dataset, train_records, val_records = load_data(config, runtime)
    # Rank 0 builds (or resumes) the cache while the others wait, then everyone opens it.
    if runtime.is_main:
        gpu = runtime.device.type == "cuda"
        ensure_cache(dataset, config.cache_dir, config.encoder, config.image_size,
                     batch_size=64 if gpu else 8, workers=max(2, config.loader_workers),
                     device=runtime.device)
    runtime.barrier()
    cache = ensure_cache(dataset, config.cache_dir, config.encoder, config.image_size)
    resumed = find_resumable(config)
    init = load_checkpoint(config.init) if config.init and resumed is None else None
    if resumed is not None:
        vocab, model_config = resumed.vocab, resumed.config
    elif init is not None:
        if init.encoder is not None:
            raise TrainingError(f"{config.init}: carries a fine-tuned encoder, which cached "
                                "features do not reflect; continue it with training.finetune")
        if (init.config.encoder, init.config.image_size) != (config.encoder, config.image_size):
            raise TrainingError(f"{config.init}: made for {init.config.encoder} at "
                                f"{init.config.image_size} px; pass --encoder "
                                f"{init.config.encoder} --image-size {init.config.image_size}")
        torch.manual_seed(config.seed)
        vocab = init.vocab
        model_config = dataclasses.replace(init.config, attention=config.attention)
    else:
        random.seed(config.seed)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        vocab = Vocabulary.build((c for r in train_records for c in r.captions),
                                 config.min_word_count)
        model_config = config.model_config(len(vocab), encoder_spec(config.encoder).dim)
    decoder = Decoder(model_config).to(runtime.device)
    if resumed is not None or init is not None:
        decoder.load_state_dict((resumed or init).decoder)
    table = caption_table(train_records, cache, vocab)
    stage = make_stage(decoder, decoder, [{"params": decoder.parameters()}], config, runtime,
                       table, lambda batches: CachedBatches(table, batches, cache),
                       lambda records: cache.batch(cache.rows([r.path for r in records]))
                       .to(runtime.device))
    if runtime.is_main:
        print(f"{dataset.name}: {len(train_records)} train images, {len(table)} captions, "
              f"{len(val_records)} val images, vocabulary {len(vocab)}, grid {cache.grid}, "
              f"{sum(p.numel() for p in decoder.parameters()):,} decoder parameters, "
              f"{runtime.world_size} process(es) on {runtime.device.type}, {config.precision}",
              file=sys.stderr)
    return fit(stage, config, runtime, dataset, vocab, val_records, resumed)


def load_data(config: TrainConfig, runtime: Runtime
              ) -> tuple[CaptionDataset, list[ImageRecord], list[ImageRecord]]:
    """The dataset and its train / val records; the output folder checked first."""
    if runtime.is_main:
        check_output_dir(Path(config.out))
    dataset = load_karpathy(config.data, config.images or None)
    # COCO's Karpathy split also trains on "restval" (the 30k val2014 images not held out).
    train_records, val_records = dataset.split("train", "restval"), dataset.split("val")
    if not train_records or not val_records:
        raise DatasetError(f"{config.data}: needs both train and val images "
                           f"(found {len(train_records)} train, {len(val_records)} val)")
    if config.val_images:
        val_records = val_records[:config.val_images]
    return dataset, train_records, val_records


def find_resumable(config: TrainConfig) -> Checkpoint | None:
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


def make_stage(module: torch.nn.Module, decoder: Decoder, param_groups: list[dict],
               config: TrainConfig, runtime: Runtime, table, reader, features_of,
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


def fit(stage: Stage, config: TrainConfig, runtime: Runtime, dataset: CaptionDataset,
        vocab: Vocabulary, val_records: list[ImageRecord], resumed: Checkpoint | None) -> Path:
    """The loop shared by every stage: epochs of train_step, validation, checkpoints, logs."""
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    log = RunLog(out)
    progress = Progress()
    if resumed is not None:
        stage.optimizer.load_state_dict(resumed.training["optimizer"])
        stage.scheduler.load_state_dict(resumed.training["scheduler"])
        if "grad_scaler" in resumed.training:
            stage.scaler.load_state_dict(resumed.training["grad_scaler"])
        progress = Progress(**resumed.training["progress"])
        restore_rng(resumed.training, runtime, config.seed)
        progress.batch_in_epoch = rescale_position(
            progress.batch_in_epoch, resumed.training.get("world_size", 1), runtime.world_size)
        if runtime.is_main:
            log.truncate_after(progress.step)
            print(f"resumed {last_path} at epoch {progress.epoch + 1}, step {progress.step}",
                  file=sys.stderr)
    else:
        # Different sampling noise (hard attention, dropout) in each process.
        torch.manual_seed(config.seed + runtime.rank)
    if config.max_steps and progress.step >= config.max_steps:
        if runtime.is_main:
            print(f"{last_path} is already at step {progress.step} (--max-steps "
                  f"{config.max_steps}): nothing to do", file=sys.stderr)
        return best_path

    def checkpoint_last() -> None:
        # Every process's RNG state is gathered (a collective: all processes call this).
        rng_states = runtime.gather(rng_state(runtime.device))
        if runtime.is_main:
            save_last(last_path, stage, vocab, config, dataset, progress, rng_states,
                      runtime.world_size)
        runtime.barrier()

    optimizer = stage.optimizer
    window_start, window_captions = time.perf_counter(), 0
    while progress.epoch < config.epochs:
        loader, steps_in_epoch = epoch_loader(stage.table, stage.reader, config, runtime,
                                              progress.epoch, progress.batch_in_epoch)
        for batch in loader:
            if stage.step is not None:
                stats = stage.step(batch.to(runtime.device), progress)
            else:
                stats = train_step(stage.model, batch.to(runtime.device), optimizer, config,
                                   progress, runtime, stage.scaler)
            progress.step += 1
            progress.batch_in_epoch += 1
            window_captions += stats["sentences"] * runtime.world_size
            if progress.step % config.log_every == 0 and runtime.is_main:
                elapsed = time.perf_counter() - window_start
                log.write({"type": "train", "step": progress.step, "epoch": progress.epoch + 1,
                           **stats, "lr": optimizer.param_groups[0]["lr"],
                           "captions_per_s": window_captions / max(elapsed, 1e-9)})
                window_start, window_captions = time.perf_counter(), 0
            if progress.step % config.checkpoint_every == 0:
                checkpoint_last()
            if config.max_steps and progress.step >= config.max_steps:
                break
        epoch_done = progress.batch_in_epoch >= steps_in_epoch
        bleu4 = (validate(stage.decoder, val_records, stage.features_of, vocab, config)
                 if runtime.is_main else 0.0)
        bleu4 = runtime.broadcast(bleu4)  # every process steps its scheduler and stops alike
        improved = bleu4 > progress.best_bleu4
        if improved:
            progress.best_bleu4, progress.bad_epochs = bleu4, 0
        else:
            progress.bad_epochs += 1
        stage.scheduler.step(bleu4)
        if runtime.is_main:
            log.write({"type": "val", "step": progress.step, "epoch": progress.epoch + 1,
                       "bleu4": bleu4, "best_bleu4": progress.best_bleu4,
                       "lr": optimizer.param_groups[0]["lr"]})
            print(f"epoch {progress.epoch + 1} step {progress.step}: val BLEU-4 "
                  f"{100 * bleu4:.2f} (best {100 * progress.best_bleu4:.2f})", file=sys.stderr)
            if improved:
                save_checkpoint(model_checkpoint(stage, vocab, config, dataset, progress),
                                best_path)
        if epoch_done:
            progress.epoch += 1
            progress.batch_in_epoch = 0
        checkpoint_last()
        if runtime.is_main:
            log.plot()
        if config.max_steps and progress.step >= config.max_steps:
            break
        if progress.bad_epochs >= config.early_stop_patience:
            if runtime.is_main:
                print(f"early stop: no improvement for {progress.bad_epochs} validations",
                      file=sys.stderr)
            break
    return best_path


def make_optimizer(param_groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """config.lr is the default; a group may carry its own (the encoder's, when fine-tuning)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(param_groups, config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(param_groups, config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(param_groups, config.lr, momentum=0.9,
                           weight_decay=config.weight_decay)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(training: dict, runtime: Runtime, seed: int) -> None:
    """Each process continues its own random stream; with a different number of processes
    than the run was saved with, the streams are re-seeded."""
    states = training.get("rng")
    if states is None:  # checkpoints written before multi-process training
        states = [{"torch": training["torch_rng"], "python": training["python_rng"]}]
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


def run_command(stage: Callable[[TrainConfig], Path], config: TrainConfig) -> int:
    """A training command's exit status: 2 with one line for a problem the user can fix."""
    try:
        best = stage(config)
    except (DatasetError, ImageError, CheckpointError, TrainingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun, once
        print(f"best checkpoint: {best}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(train, parse_config(argv))


if __name__ == "__main__":
    sys.exit(main())
