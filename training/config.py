"""The one training configuration. Every field is a command-line flag (--hidden-dim 512)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Sequence

from captioner.config import ModelConfig


@dataclass
class TrainConfig:
    # data
    data: str = ""  # Karpathy-format dataset JSON (required)
    images: str = ""  # image folder; default <data dir>/images
    cache_dir: str = "cache"  # feature caches live here, one folder per dataset/encoder/size
    out: str = "runs/soft"  # checkpoints, log.jsonl and curves.png
    # start from this checkpoint's weights, vocabulary and sizes (only --attention may differ:
    # a soft model is a warm start for hard attention, whose parameters are the same)
    init: str = ""
    min_word_count: int = 5
    # model (copied into ModelConfig, which the checkpoints carry)
    encoder: str = "efficientnet_lite0"
    image_size: int = 224
    attention: str = "soft"
    embed_dim: int = 256
    hidden_dim: int = 512
    attention_dim: int = 512
    dropout: float = 0.5
    gate: str = "scalar"
    # losses
    doubly_stochastic: float = 1.0  # lambda of sum_i (1 - sum_t alpha_ti)^2
    entropy_weight: float = 0.002  # lambda_e, hard attention's entropy bonus
    reinforce_weight: float = 1.0  # lambda_r, weight of the REINFORCE term
    baseline_decay: float = 0.9  # b <- decay * b + (1 - decay) * log p(y | s, a)
    # optimisation
    optimizer: str = "adam"  # adam | rmsprop | sgd (momentum 0.9)
    lr: float = 4e-4
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    batch_size: int = 64  # per process: the global batch is batch_size x processes
    epochs: int = 20
    lr_patience: int = 1  # validation epochs without improvement before the LR is halved
    lr_factor: float = 0.5
    early_stop_patience: int = 4  # validation epochs without improvement before stopping
    seed: int = 0
    max_steps: int = 0  # stop after this many steps (0: no limit), for short runs
    # validation
    val_beam: int = 3
    val_images: int = 0  # 0: the whole val split
    max_length: int = 20
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 200  # steps between `last.pt` writes (also written at epoch end)
    resume: bool = False
    # where and how it runs (under torchrun, one process per device)
    threads: int = 2  # torch CPU threads per process
    device: str = "auto"  # auto | cpu | cuda (auto: CUDA when a GPU is visible)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler, CUDA only)
    compile: bool = False  # torch.compile the decoder's training forward
    loader_workers: int = 0  # DataLoader processes reading batches from the cache

    def model_config(self, vocab_size: int, encoder_dim: int) -> ModelConfig:
        names = {f.name for f in fields(ModelConfig)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        return ModelConfig(**values, vocab_size=vocab_size, encoder_dim=encoder_dim)

    def validate(self) -> None:
        if not self.data:
            raise ValueError("--data is required")
        if self.optimizer not in ("adam", "rmsprop", "sgd"):
            raise ValueError("--optimizer must be adam, rmsprop or sgd")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError("--precision must be fp32, bf16 or fp16")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("--batch-size and --epochs must be positive")
        self.model_config(vocab_size=5, encoder_dim=1)  # validates the model fields


@dataclass
class FinetuneConfig(TrainConfig):
    """Second stage: the encoder's top blocks and the decoder, end to end from images.
    The model fields above are ignored: the model comes from --init."""

    init: str = ""  # first-stage checkpoint to start from (required unless --resume)
    encoder_lr: float = 1e-5  # the fine-tuned encoder blocks' learning rate
    finetune_blocks: int = 2  # how many top blocks of the encoder are trained
    out: str = "runs/finetune"
    lr: float = 1e-4  # the decoder's, lower than in the first stage
    batch_size: int = 32
    epochs: int = 3
    loader_workers: int = 2  # decoding JPEGs is now part of every step


def parse_config(argv: Sequence[str] | None = None, prog: str = "python -m training.train",
                 cls: type[TrainConfig] = TrainConfig, description: str = "Train a Show, "
                 "Attend and Tell captioner on cached encoder features.") -> TrainConfig:
    """Flags generated from the config's fields; unknown flags are an error (argparse's)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(flag, type=kind, default=f.default, metavar=f.name.upper())
    config = cls(**vars(parser.parse_args(argv)))
    try:
        config.validate()
    except ValueError as exc:
        parser.error(str(exc))
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
