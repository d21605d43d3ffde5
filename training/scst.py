"""Self-critical sequence training (Rennie et al. 2017): a second stage that trains the
captioner on the score of its own captions instead of the likelihood of the references.

    python -m training.scst --init runs/soft/best.pt \
        --data ../shared/data/flickr8k/dataset_flickr8k.json --out runs/soft_scst
    python -m training.scst ... --resume        # continue from runs/soft_scst/last.pt

For every training image the model samples --samples captions (dropout on, as in training,
unless --no-sample-dropout), and each caption's reward is its CIDEr-D against that image's
references, with document frequencies from all training references (training.cider). The
policy gradient is

    grad = -sum_j (r_j - b_j) grad log p(caption_j, locations_j | image)

Baseline (--reward-baseline): by default b_j is the mean reward of the image's other samples (Luo
2020, "a better variant of SCST"): it needs no extra decoding pass, it does not depend on
sample j (so the gradient stays unbiased), and it follows the sampling policy itself instead
of a greedy caption that is often better than every sample early on (which would push all
probabilities down at once). --reward-baseline greedy is Rennie et al.'s own: b_j is the
reward of the image's greedy caption (eval mode, the app's repeat blocking), so a sample is
pushed up only when it beats what the model would say at test time. It is meant to tie the
objective to the test-time caption, but on the tests' tiny set it did not: the greedy
caption's CIDEr-D fell with either baseline (benchmarks.scst_objective, docs/results.md).

Hard attention samples its locations too, so a caption is a joint sequence of actions (words
and locations) with one reward at the end. Every sampled location's log-probability is
weighted by the same advantage r_j - b_j as the words: REINFORCE over the joint policy, where
the return of each action is the sentence's reward (there is no earlier reward to credit a
location with). Steps that used the expected context (the paper's variance trick, half the
steps) carry no location term; their gradient reaches the attention through the words.
The entropy bonus of the first stage is kept (--entropy-weight) so that the locations do not
collapse onto one cell.

--xe-weight W adds W times the first stage's cross-entropy on the batch's reference captions
(per word, as the policy term is), an anchor that keeps the likelihood of real captions, which
beam search ranks by, from drifting while the samples' reward rises.

Writes last.pt / best.pt (best validation BLEU-4, the same decoding as the app), log.jsonl
(reward, baseline, sample length per logging step) and curves.png, like training.train.

This module is the stage and its step; the samples and rewards are training.rewards, the loss
and the reference cross-entropy training.losses, the flags training.config.ScstConfig.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch

from captioner.attention import attention_entry
from captioner.build import load_decoder

from .batches import CachedImages, ImageBatch
from .cider import CiderD
from .commands import prog
from .config import ScstConfig, parse_config
from .distributed import Runtime
from .features import cached_features
from .loop import Progress, Stage, StageData, TrainingError, make_stage
from .losses import reference_cross_entropy, self_critical_loss
from .rewards import caption_rewards, greedy_rewards, sample_captions, set_dropout
from .runner import (Start, feature_caches, require_pretrained_encoder, run_command, run_stage,
                     starting_checkpoint)


def scst(config: ScstConfig) -> Path:
    return run_stage(build_stage, config)


def build_stage(config: ScstConfig, runtime: Runtime, start: Start) -> Stage:
    """The decoder, trained on the CIDEr-D of its own samples of the cached training images."""
    source, name = starting_checkpoint(config, start.resumed)
    require_pretrained_encoder(source, name, "run SCST before fine-tuning")
    model_config = source.config
    train_records = start.train_records
    cache, = feature_caches(start.dataset, config, model_config, runtime)
    torch.manual_seed(config.seed)
    decoder = load_decoder(source, name).to(runtime.device)
    vocab = source.vocab
    scorer = CiderD({i: record.captions for i, record in enumerate(train_records)})
    rows = cache.rows([r.path for r in train_records])
    table = [(row, (i,)) for i, row in enumerate(rows)]  # one entry per image
    references = ([[vocab.encode(caption) for caption in record.captions]
                   for record in train_records] if config.xe_weight > 0 else None)
    data = StageData(table, lambda batches, epoch: CachedImages(table, batches, cache),
                     cached_features(cache, runtime.device))
    return make_stage(
        config, runtime, vocab, decoder, data,
        partial(scst_step, scorer=scorer, references=references), data_parallel=False,
        summary=f"SCST from {name} ({model_config.attention} attention): "
                f"{len(train_records)} images x {config.samples} samples, CIDEr-D over "
                f"{len(train_records)} images' references, {runtime.world_size} process(es) "
                f"on {runtime.device.type}")


def scst_step(stage: Stage, batch: ImageBatch, progress: Progress, scorer: CiderD,
              references: list[list[list[int]]] | None = None) -> dict[str, float]:
    """The stage's step: sample, score against the baseline, follow the policy gradient (and,
    with --xe-weight, the references' cross-entropy)."""
    decoder, vocab, config, runtime = stage.decoder, stage.vocab, stage.config, stage.runtime
    decoder.train()
    if not config.sample_dropout:
        set_dropout(decoder, False)
    k = config.samples
    with runtime.autocast():
        drawn = sample_captions(decoder, batch.features, k, config.max_length,
                                config.temperature)
    images = batch.images.repeat_interleave(k).tolist()
    rewards = caption_rewards(scorer, vocab, images, drawn.tokens.tolist(),
                              drawn.log_prob.device).view(-1, k)  # (I, k)
    if config.reward_baseline == "greedy":
        baseline = greedy_rewards(decoder, batch, scorer, vocab, config.max_length
                                  ).unsqueeze(1).expand(-1, k)
    else:  # the other samples' mean
        baseline = (rewards.sum(1, keepdim=True) - rewards) / (k - 1)
    advantage = (rewards - baseline).view(-1)
    words = drawn.mask.sum()
    # Normalised by the global batch's sampled words, as the first stage's loss is: every
    # process then takes one share of the same global gradient.
    global_words = runtime.sum(float(words))[0]
    reinforce = attention_entry(decoder.config.attention).reinforce
    loss = self_critical_loss(drawn, advantage, config.entropy_weight if reinforce else 0.0,
                              global_words / runtime.world_size)
    cross_entropy = torch.zeros(())
    if config.xe_weight > 0:
        if references is None:
            raise TrainingError("--xe-weight needs the reference captions")
        with runtime.autocast():
            cross_entropy = reference_cross_entropy(decoder, batch, references)
        loss = loss + config.xe_weight * cross_entropy
    nonfinite = runtime.sum(float(not torch.isfinite(loss)))[0]
    if nonfinite:
        raise TrainingError(f"SCST loss became {loss.item()}")
    stage.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    runtime.average_gradients(decoder.parameters())  # not trained through a DDP forward
    grad_norm = torch.nn.utils.clip_grad_norm_(decoder.parameters(), config.grad_clip)
    stage.optimizer.step()
    return {"sentences": len(images), "loss": loss.item(), "reward": rewards.mean().item(),
            "baseline": baseline.mean().item(),
            "positive_advantages": (advantage > 0).float().mean().item(),
            "best_sample": rewards.max(1).values.mean().item(),
            "sample_words": float(words) / len(images), "grad_norm": float(grad_norm),
            "reference_xe": cross_entropy.item()}


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv, prog=prog("scst"), cls=ScstConfig,
                          description="Self-critical sequence training (CIDEr-D reward) from a "
                          "first-stage checkpoint.")
    return run_command(scst, config)


if __name__ == "__main__":
    sys.exit(main())
