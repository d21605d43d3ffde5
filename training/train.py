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

from captioner.checkpoint import load_checkpoint
from captioner.decoder import build_decoder
from captioner.encoder import encoder_spec
from captioner.vocab import Vocabulary

from .batches import CachedBatches, Mirroring, caption_table
from .config import TrainConfig, parse_config
from .distributed import Runtime
from .features import cached_features, ensure_cache
from .loop import (find_resumable, fit, load_data, make_stage, require_pretrained_encoder,
                   run_command, run_in_runtime, with_new_words)


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun every process runs this function; rank 0 alone validates and writes.
    """
    return run_in_runtime(_train, config)


def _train(config: TrainConfig, runtime: Runtime) -> Path:
    dataset, train_records, val_records = load_data(config, runtime)
    resumed = find_resumable(config)
    init = load_checkpoint(config.init) if config.init and resumed is None else None
    if resumed is not None:
        vocab, model_config = resumed.vocab, resumed.config
    elif init is not None:
        require_pretrained_encoder(init, config.init, "continue it with training.finetune")
        if config.grow_vocabulary:
            init = with_new_words(init, config.init, train_records, config.min_word_count,
                                  runtime)
        vocab, model_config = init.vocab, config.init_model_config(init.config, config.init)
    else:
        vocab = Vocabulary.build((c for r in train_records for c in r.captions),
                                 config.min_word_count)
        model_config = config.model_config(len(vocab), encoder_spec(config.model.encoder).dim)
    config = dataclasses.replace(config, model=model_config)  # what the checkpoints record
    # Rank 0 builds (or resumes) the caches while the others wait, then everyone opens them.
    caches = [{}]  # ensure_cache's extra arguments: the dataset's own cache, the mirrored one
    if config.flip_augment:
        caches.append({"images": train_records, "mirrored": True})
    if runtime.is_main:
        gpu = runtime.device.type == "cuda"
        for which in caches:
            ensure_cache(dataset, config.cache_dir, model_config.encoder, model_config.image_size,
                         batch_size=64 if gpu else 8, workers=max(2, config.loader_workers),
                         device=runtime.device, **which)
    runtime.barrier()
    cache, *mirrored = [ensure_cache(dataset, config.cache_dir, model_config.encoder,
                                     model_config.image_size, **which) for which in caches]
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
    stage = make_stage(decoder, decoder, [{"params": decoder.parameters()}], config, runtime,
                       table, lambda batches, epoch: CachedBatches(table, batches, cache,
                                                                   mirroring, epoch),
                       cached_features(cache, runtime.device))
    if runtime.is_main:
        print(f"{dataset.name}: {len(train_records)} train images, {len(table)} captions, "
              f"{len(val_records)} val images, vocabulary {len(vocab)}, grid {cache.grid}, "
              f"{sum(p.numel() for p in decoder.parameters()):,} decoder parameters, "
              f"{runtime.world_size} process(es) on {runtime.device.type}, {config.precision}",
              file=sys.stderr)
    return fit(stage, config, runtime, dataset, vocab, val_records, resumed)


def main(argv: list[str] | None = None) -> int:
    return run_command(train, parse_config(argv))


if __name__ == "__main__":
    sys.exit(main())
