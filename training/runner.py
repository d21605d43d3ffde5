"""A training stage from start to end, the same for every stage: threads, device and process
group; the data and the output folder; last.pt when resuming; the feature caches; the stage,
built whole by its module (training.train, .finetune, .scst); `fit`; and the command's exit
status."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from captioner.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from captioner.config import ModelConfig
from captioner.images import ImageError
from captioner.inference import resolve_checkpoint

from .config import StageConfig
from .data import CaptionDataset, DatasetError, ImageRecord, load_karpathy
from .distributed import Runtime, setup, teardown
from .features import FeatureCache, ensure_cache
from .loop import Stage, TrainingError, fit
from .vocab_growth import grow_vocabulary, words_to_add

MIN_FREE_BYTES = 200 * 2**20


class Start(NamedTuple):
    """What a stage is built from: the dataset, its train and val records, and last.pt when
    resuming."""

    dataset: CaptionDataset
    train_records: list[ImageRecord]
    val_records: list[ImageRecord]
    resumed: Checkpoint | None


# A stage module's builder: (its config, runtime, start) -> the stage, built whole.
BuildStage = Callable[[StageConfig, Runtime, Start], Stage]


def run_stage(build: BuildStage, config: StageConfig) -> Path:
    """Run (or resume) a stage; returns the path of its best checkpoint. Threads, device,
    precision and (under torchrun) the process group around it: every process runs this
    function; rank 0 alone validates and writes."""
    torch.set_num_threads(config.threads)
    runtime = setup(config.device, config.precision)
    try:
        best = _run(build, config, runtime)
        # Every process finishes its stage before any tears the process group down: a rank
        # leaving while another is still in a collective aborted once under load (SIGABRT,
        # "terminate called without an active exception"). Only on success: after an error
        # the others might never arrive.
        runtime.barrier()
        return best
    finally:
        teardown()


def _run(build: BuildStage, config: StageConfig, runtime: Runtime) -> Path:
    dataset, train_records, val_records = load_data(config, runtime)
    resumed = find_resumable(config)
    stage = build(config, runtime, Start(dataset, train_records, val_records, resumed))
    if runtime.is_main:
        print(stage.summary, file=sys.stderr)
    return fit(stage, dataset.name, val_records, resumed)


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
    return load_checkpoint(resolve_checkpoint(config.init)), config.init


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


def feature_caches(dataset: CaptionDataset, config: StageConfig, model: ModelConfig,
                   runtime: Runtime, mirrored: list[ImageRecord] | None = None
                   ) -> list[FeatureCache]:
    """The dataset's feature cache for the model's encoder and image size, and with
    `mirrored` a second one of those records' photos flipped. Rank 0 builds (or resumes) them
    while the others wait, then every process opens them."""
    caches = [{}]  # ensure_cache's extra arguments, one dict per cache
    if mirrored:
        caches.append({"images": mirrored, "mirrored": True})
    if runtime.is_main:
        gpu = runtime.device.type == "cuda"
        for which in caches:
            ensure_cache(dataset, config.cache_dir, model.encoder, model.image_size,
                         batch_size=64 if gpu else 8, workers=max(2, config.loader_workers),
                         device=runtime.device, **which)
    runtime.barrier()
    return [ensure_cache(dataset, config.cache_dir, model.encoder, model.image_size, **which)
            for which in caches]


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
