"""Train Show, Attend and Tell on cached encoder features.

    python -m training.train --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --attention soft --out runs/soft
    python -m training.train ... --resume        # continue from runs/soft/last.pt
    torchrun --nproc_per_node=4 -m training.train ... --device cuda --precision bf16

Writes to --out: last.pt (every --checkpoint-every steps and at each epoch end, atomically,
with optimizer/scheduler/RNG/data position), best.pt (best validation BLEU-4), log.jsonl
(one JSON line per logging step and per validation) and curves.png.

With --init, the training captions' words that the checkpoint lacks (seen --min-word-count
times) join its vocabulary, old ids and weights unchanged (training.vocab_growth), instead of
becoming <unk>; --no-grow-vocabulary keeps the checkpoint's vocabulary.
"""
from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import torch

from captioner.build import build_decoder
from captioner.checkpoint import Checkpoint, load_checkpoint
from captioner.config import ModelConfig
from captioner.encoder import encoder_spec
from captioner.inference import resolve_checkpoint
from captioner.vocab import Vocabulary

from .batches import CachedBatches, Mirroring, caption_table
from .commands import prog
from .config import TrainConfig, parse_config
from .distributed import Runtime
from .features import cached_features
from .loop import Stage, StageData, make_stage, teacher_forcing
from .runner import (Start, feature_caches, require_pretrained_encoder, run_command,
                     run_stage, with_new_words)


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun every process runs this function; rank 0 alone validates and writes.
    """
    return run_stage(build_stage, config)


def build_stage(config: TrainConfig, runtime: Runtime, start: Start) -> Stage:
    """The decoder, trained by teacher forcing on cached features of a frozen encoder."""
    dataset, train_records, resumed = start.dataset, start.train_records, start.resumed
    vocab, model_config, init = starting_model(config, start, runtime)
    config = dataclasses.replace(config, model=model_config)  # what the checkpoints record
    cache, *mirrored = feature_caches(dataset, config, model_config, runtime,
                                      train_records if config.flip_augment else None)
    if init is None and resumed is None:
        random.seed(config.seed)
    if resumed is None:
        torch.manual_seed(config.seed)  # the same initial weights in every process
    decoder = build_decoder(model_config).to(runtime.device)
    if resumed is not None or init is not None:
        decoder.load_state_dict((resumed or init).decoder)
    table = caption_table(train_records, cache, vocab)
    mirroring = (Mirroring.build(cache, mirrored[0], [r.path for r in train_records], vocab,
                                 config.seed) if mirrored else None)
    data = StageData(table, lambda batches, epoch: CachedBatches(table, batches, cache,
                                                                 mirroring, epoch),
                     cached_features(cache, runtime.device))
    return make_stage(
        config, runtime, vocab, decoder, data, teacher_forcing,
        summary=f"{dataset.name}: {len(train_records)} train images, {len(table)} captions, "
                f"{len(start.val_records)} val images, vocabulary {len(vocab)}, grid "
                f"{cache.grid}, {sum(p.numel() for p in decoder.parameters()):,} decoder "
                f"parameters, {runtime.world_size} process(es) on {runtime.device.type}, "
                f"{config.precision}")


def starting_model(config: TrainConfig, start: Start, runtime: Runtime
                   ) -> tuple[Vocabulary, ModelConfig, Checkpoint | None]:
    """The vocabulary and model config: last.pt's when resuming, --init's (and that
    checkpoint), or new ones from the training captions and the model flags."""
    resumed = start.resumed
    init = (load_checkpoint(resolve_checkpoint(config.init)) if config.init and resumed is None
            else None)
    if resumed is not None:
        vocab, model_config = resumed.vocab, resumed.config
    elif init is not None:
        require_pretrained_encoder(init, config.init, "continue it with training.finetune")
        if config.grow_vocabulary:
            init = with_new_words(init, config.init, start.train_records,
                                  config.min_word_count, runtime)
        vocab, model_config = init.vocab, config.init_model_config(init.config, config.init)
    else:
        vocab = Vocabulary.build((c for r in start.train_records for c in r.captions),
                                 config.min_word_count)
        model_config = config.model_config(len(vocab), encoder_spec(config.model.encoder).dim)
    return vocab, model_config, init


def main(argv: list[str] | None = None) -> int:
    return run_command(train, parse_config(argv, prog("train")))


if __name__ == "__main__":
    sys.exit(main())
