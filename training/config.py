"""Training configurations. Every field is a command-line flag (--hidden-dim 512), made by
captioner.flags as the CLI's are; a TrainConfig's model flags are ModelConfig's own fields."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

from captioner.attention import ATTENTIONS
from captioner.config import GATE_KINDS, ModelConfig
from captioner.encoder import ENCODERS
from captioner.flags import add_option_flags, flag_message, flag_name

from .commands import prog as command_prog
from .optimizers import OPTIMIZERS

# ModelConfig fields that are not flags: filled in from the vocabulary and the encoder, or
# chosen at inference.
DERIVED_MODEL_FIELDS = ("vocab_size", "encoder_dim", "hard_inference", "attention_temperature",
                        "concepts", "imagenet_concepts", "quantized")
MODEL_FLAGS = tuple(f.name for f in fields(ModelConfig) if f.name not in DERIVED_MODEL_FIELDS)
# The model flags with a fixed set of values: their registries (or lists) are the choices.
MODEL_CHOICES = {"attention": ATTENTIONS, "encoder": ENCODERS, "gate": GATE_KINDS}  # read live
# The stage flags with a registry of values.
STAGE_CHOICES = {"optimizer": OPTIMIZERS}


@dataclass
class StageConfig:
    """What every training stage shares: data, output, losses, optimisation, validation,
    bookkeeping and where it runs."""

    # data
    data: str = ""  # Karpathy-format dataset JSON (required)
    images: str = ""  # image folder; default <data dir>/images
    cache_dir: str = "cache"  # feature caches live here, one folder per dataset/encoder/size
    out: str = "runs/soft"  # checkpoints, log.jsonl and curves.png
    init: str = ""  # start from this checkpoint's (or shipped model's) weights, vocab, config
    # losses
    doubly_stochastic: float = 1.0  # lambda of sum_i (1 - sum_t alpha_ti)^2
    entropy_weight: float = 0.002  # lambda_e, hard attention's entropy bonus
    reinforce_weight: float = 1.0  # lambda_r, weight of the REINFORCE term
    baseline_decay: float = 0.9  # b <- decay * b + (1 - decay) * log p(y | s, a)
    # optimisation
    optimizer: str = "adam"  # a name from training.optimizers.OPTIMIZERS (sgd: momentum 0.9)
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
    # validation (decoded as captioner.options.MODEL_ALONE: the shipped defaults, the decoder on
    # its own)
    val_images: int = 0  # 0: the whole val split
    max_length: int = 20  # the longest caption self-critical training samples
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

    def validate(self) -> None:
        if not self.data:
            raise ValueError("--data is required")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}; "
                             f"got {self.optimizer!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError("--precision must be fp32, bf16 or fp16")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("--batch-size and --epochs must be positive")
        if self.threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {self.threads})")


@dataclass
class TrainConfig(StageConfig):
    """First stage: the decoder on cached features of a frozen encoder. The model flags
    (--embed-dim, --attention, ...) are ModelConfig's fields. With --init, the flags not
    given take the checkpoint's values and a given one must agree with it, except
    --attention: a soft model is a warm start for hard attention (same parameters)."""

    min_word_count: int = 5
    # With --init: the training captions' words (seen --min-word-count times) that the
    # checkpoint's vocabulary lacks join it (training.vocab_growth) instead of becoming <unk>.
    grow_vocabulary: bool = True
    # Each epoch, every training photo is used mirrored with probability 1/2 ("left" and
    # "right" swapped in its captions); builds a second cache of the mirrored training photos.
    flip_augment: bool = False
    # A training.concepts file: the decoder reads its concepts (detectors, and every cached
    # photo's concept vector scored by detectors that never saw it). Empty: the grid alone.
    concept_file: str = ""
    # Caption text without photos (COCO's captions.jsonl) trained beside the photos, through
    # pseudo-concepts (training.text_concepts); needs --concept-file.
    caption_text: str = ""
    text_groups: int = 0  # text photos (5 captions each) used, the first N (0: all)
    text_min_count: int = 5  # a text word joins the vocabulary when seen this many times
    # Share of training photos read from their concepts alone (grid zeroed), so reading text
    # without a grid is no sign of being text.
    concepts_only: float = 0.1
    # Share of text items read beside a random training photo's grid (training.concept_data).
    text_grids: float = 0.0
    # The concept layers' learning rate, as a multiple of --lr: they start from zero.
    concept_lr_scale: float = 1.0
    # Weight of the attention supervision: KL(target map || alpha_t) at each step whose word
    # names a concept, the target its detector's cells or ImageNet class activation map.
    attention_supervision: float = 0.0
    # Its fields are flags of their own (MODEL_FLAGS), not this field.
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"flag": False})
    # The model flags given on the command line (parse_config fills it in), checked against
    # an --init checkpoint. Not a flag itself.
    model_flags: tuple[str, ...] = field(default=(), metadata={"flag": False})

    def model_config(self, vocab_size: int, encoder_dim: int) -> ModelConfig:
        return dataclasses.replace(self.model, vocab_size=vocab_size, encoder_dim=encoder_dim)

    def init_model_config(self, checkpoint: ModelConfig, name: str) -> ModelConfig:
        """The model to build from an --init checkpoint's config: its own, with --attention
        if given; any other given model flag that contradicts it is an error."""
        for key in self.model_flags:
            ours, theirs = getattr(self.model, key), getattr(checkpoint, key)
            if key != "attention" and ours != theirs:
                raise ValueError(f"{name}: {flag_name(key)} {ours} contradicts the checkpoint's "
                                 f"{theirs}; leave it out to take the checkpoint's")
        if "attention" in self.model_flags:
            return dataclasses.replace(checkpoint, attention=self.model.attention)
        return checkpoint


@dataclass
class FinetuneConfig(StageConfig):
    """Second stage: the encoder's top blocks and the decoder, end to end from images.
    The model is --init's."""

    init: str = ""  # first-stage checkpoint or shipped model to start from (unless --resume)
    min_word_count: int = 5  # for new words joining --init's vocabulary
    grow_vocabulary: bool = True  # as in TrainConfig
    encoder_lr: float = 1e-5  # the fine-tuned encoder blocks' learning rate
    finetune_blocks: int = 2  # how many top blocks of the encoder are trained
    out: str = "runs/finetune"
    lr: float = 1e-4  # the decoder's, lower than in the first stage
    batch_size: int = 32
    epochs: int = 3
    loader_workers: int = 2  # decoding JPEGs is now part of every step


REWARD_BASELINES = ("mean", "greedy")


@dataclass
class ScstConfig(StageConfig):
    """Self-critical stage (training.scst). The model (sizes, attention, vocabulary) comes
    from --init."""

    init: str = ""  # first-stage checkpoint or shipped model (required unless --resume)
    out: str = "runs/scst"
    samples: int = 5  # captions sampled per image
    # mean: the image's other samples' mean reward | greedy: its greedy caption's reward
    reward_baseline: str = "mean"
    temperature: float = 1.0  # sampling temperature (1: the model's own distribution)
    # Dropout while sampling: on, as in training (Rennie et al.'s reference code), or off, so
    # that the policy being improved is the network beam search decodes at test time.
    sample_dropout: bool = True
    # Weight of the first stage's cross-entropy on the batch's reference captions, added to the
    # SCST loss (per word, like it) to keep the likelihood of real captions, which beam search
    # ranks by, from drifting while the samples' reward rises. 0: SCST alone.
    xe_weight: float = 0.0
    lr: float = 5e-5
    batch_size: int = 16  # images per process and step (x samples captions)
    epochs: int = 10
    early_stop_patience: int = 3

    def validate(self) -> None:
        super().validate()
        if self.reward_baseline not in REWARD_BASELINES:
            raise ValueError(f"--reward-baseline must be one of {', '.join(REWARD_BASELINES)}")
        if self.samples < 2 and self.reward_baseline == "mean":
            raise ValueError("--samples must be at least 2 (the baseline is the others' mean)")
        if self.temperature <= 0:
            raise ValueError("--temperature must be positive")
        if self.xe_weight < 0:
            raise ValueError("--xe-weight must be 0 or more")


def parse_config(argv: Sequence[str] | None = None, prog: str | None = None,
                 cls: type[StageConfig] = TrainConfig, description: str = "Train a Show, "
                 "Attend and Tell captioner on cached encoder features.") -> StageConfig:
    """Flags generated from the config's fields by captioner.flags (with a ModelConfig field:
    a flag per model field, MODEL_FLAGS); unknown flags are an error (argparse's). prog: the
    usage line's command (default: training.train's)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog or command_prog("train"),
                                     description=description)
    add_option_flags(parser, cls, choices=STAGE_CHOICES)
    has_model = any(f.name == "model" for f in fields(cls))
    if has_model:
        # No default: a flag left out is told apart from one given (see model_flags).
        add_option_flags(parser, ModelConfig, title="model", only=MODEL_FLAGS,
                         choices=MODEL_CHOICES, track_given=True)
    values = vars(parser.parse_args(argv))
    given = {name: values.pop(name) for name in MODEL_FLAGS if name in values}
    try:
        if has_model:
            values.update(model=ModelConfig(**given), model_flags=tuple(given))
        config = cls(**values)
        config.validate()
    except ValueError as exc:  # ModelConfig's own checks name fields: named as flags here
        parser.error(flag_message(str(exc), ModelConfig))
    return config


def config_to_dict(config: StageConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
