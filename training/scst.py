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
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from captioner.attention import attention_entry
from captioner.build import load_decoder
from captioner.decoder import Decoder
from captioner.decoding import content_word_mask, greedy
from captioner.vocab import Vocabulary

from .batches import pad_captions
from .cider import CiderD
from .config import StageConfig, parse_config
from .distributed import Runtime
from .features import FeatureCache, cached_features
from .loop import Progress, Stage, StageData, TrainingError, make_stage
from .runner import (Start, feature_caches, require_pretrained_encoder, run_command, run_stage,
                     starting_checkpoint)
from .losses import caption_loss

START, END, PAD, UNK = (Vocabulary.start_id, Vocabulary.end_id, Vocabulary.pad_id,
                        Vocabulary.unk_id)
REWARD_BASELINES = ("mean", "greedy")


@dataclass
class ScstConfig(StageConfig):
    """Self-critical stage. The model (sizes, attention, vocabulary) comes from --init."""

    init: str = ""  # first-stage checkpoint (required unless --resume)
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


class ImageBatch(NamedTuple):
    features: torch.Tensor  # (I, L, D)
    images: torch.Tensor  # (I,) index of each image in the training records

    def to(self, device: torch.device) -> "ImageBatch":
        return ImageBatch(self.features.to(device, non_blocking=True), self.images)


class CachedImages(Dataset):
    """Item i is batch i of images: their features from the cache and their record index."""

    def __init__(self, table, batches: list[list[int]], cache: FeatureCache):
        self.table, self.batches, self.cache = table, batches, cache

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> ImageBatch:
        entries = [self.table[j] for j in self.batches[i]]
        return ImageBatch(self.cache.batch([row for row, _ in entries]),
                          torch.tensor([record for _, (record,) in entries]))


class Samples(NamedTuple):
    tokens: torch.Tensor  # (R, T) sampled word ids, <end> included, <pad> after it
    mask: torch.Tensor  # (R, T) 1 for sampled words (the <end> included)
    log_prob: torch.Tensor  # (R,) log p(words, locations): the policy's, differentiable
    entropy: torch.Tensor  # (R,) sum over steps of the attention's entropy


def sample_captions(decoder: Decoder, features: torch.Tensor, samples: int, max_length: int,
                    temperature: float = 1.0) -> Samples:
    """`samples` captions per image, drawn step by step through Decoder.step with gradients.
    Rows n*samples .. n*samples + samples - 1 are image n's (each image's memory once)."""
    images, device = features.shape[0], features.device
    memory = decoder.prepare(features)
    state = decoder.init_state(memory).select(
        torch.arange(images, device=device).repeat_interleave(samples))
    rows = images * samples
    forbidden = torch.zeros(decoder.config.vocab_size, dtype=torch.bool, device=device)
    forbidden[[PAD, START, UNK]] = True  # as in decoding: a user never sees these
    only_end = torch.ones_like(forbidden)
    only_end[END] = False
    tokens = torch.full((rows,), START, dtype=torch.long, device=device)
    alive = torch.ones(rows, dtype=torch.bool, device=device)
    words, masks, log_prob, entropy = [], [], 0.0, 0.0
    for t in range(max_length + 1):
        out = decoder.step(tokens, state, memory)
        logits = out.logits.float().masked_fill(only_end if t == max_length else forbidden,
                                                float("-inf"))
        log_probs = (logits / temperature).log_softmax(dim=-1)  # (R, V)
        tokens = torch.multinomial(log_probs.detach().exp(), 1).squeeze(1)
        tokens = tokens.masked_fill(~alive, PAD)
        step_log_prob = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
        if out.attention.log_prob is not None:  # hard attention: the sampled location too
            step_log_prob = step_log_prob + out.attention.log_prob
        weights = out.attention.weights.clamp_min(1e-12)
        step_entropy = -(weights * weights.log()).sum(1)
        log_prob = log_prob + step_log_prob.masked_fill(~alive, 0.0)
        entropy = entropy + step_entropy.masked_fill(~alive, 0.0)
        words.append(tokens)
        masks.append(alive)
        alive = alive & (tokens != END)
        state = out.state
        if not bool(alive.any()):
            break
    return Samples(torch.stack(words, 1), torch.stack(masks, 1).float(), log_prob, entropy)


def set_dropout(decoder: Decoder, on: bool) -> None:
    """Switch the dropout layers alone; the rest keeps its mode (hard attention still samples
    its locations in training mode)."""
    for module in decoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.train(on)


def greedy_rewards(decoder: Decoder, batch: ImageBatch, scorer: CiderD, vocab: Vocabulary,
                   max_length: int) -> torch.Tensor:
    """(I,) CIDEr-D of each image's greedy caption, decoded as at test time (eval mode)."""
    decoder.eval()
    try:
        with torch.no_grad():
            captions = greedy(decoder, batch.features, max_length=max_length,
                              content_words=content_word_mask(vocab, batch.features.device))
    finally:
        decoder.train()
    return torch.tensor([scorer.score(image, vocab.decode(caption.tokens))
                         for image, caption in zip(batch.images.tolist(), captions)],
                        device=batch.features.device)


def reference_cross_entropy(decoder: Decoder, batch: ImageBatch,
                            references: list[list[list[int]]]) -> torch.Tensor:
    """Mean cross-entropy per word of the batch images' reference captions (teacher forcing,
    each image's work once for its captions). references[i]: record i's captions as word ids.
    Hard attention samples its locations here as in the first stage, but only the words are
    scored: the locations learn from the sentence reward and the expected-context steps."""
    rows = [(i, ids) for i, image in enumerate(batch.images.tolist()) for ids in references[image]]
    captions = pad_captions([ids for _, ids in rows]).to(batch.features.device)
    image_of = torch.tensor([i for i, _ in rows], device=batch.features.device)
    targets = captions[:, 1:]
    out = decoder(batch.features, captions, image_of)
    return caption_loss(out, targets, targets != PAD).cross_entropy


def scst_step(stage: Stage, batch: ImageBatch, progress: Progress, scorer: CiderD,
              references: list[list[list[int]]] | None = None) -> dict[str, float]:
    decoder, vocab, optimizer = stage.decoder, stage.vocab, stage.optimizer
    config, runtime = stage.config, stage.runtime
    decoder.train()
    if not config.sample_dropout:
        set_dropout(decoder, False)
    k = config.samples
    with runtime.autocast():
        drawn = sample_captions(decoder, batch.features, k, config.max_length,
                                config.temperature)
    images = batch.images.repeat_interleave(k).tolist()
    rewards = torch.tensor([scorer.score(image, vocab.decode(ids))
                            for image, ids in zip(images, drawn.tokens.tolist())],
                           device=drawn.log_prob.device).view(-1, k)  # (I, k)
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
    policy = -(advantage * drawn.log_prob).sum()
    if attention_entry(decoder.config.attention).reinforce:  # the first stage's entropy bonus
        policy = policy - config.entropy_weight * drawn.entropy.sum()
    loss = policy / (global_words / runtime.world_size)
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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if runtime.distributed:  # not trained through a DDP forward: average the gradients here
        for p in decoder.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= runtime.world_size
    grad_norm = torch.nn.utils.clip_grad_norm_(decoder.parameters(), config.grad_clip)
    optimizer.step()
    return {"sentences": len(images), "loss": loss.item(), "reward": rewards.mean().item(),
            "baseline": baseline.mean().item(),
            "positive_advantages": (advantage > 0).float().mean().item(), "best_sample": rewards.max(1).values.mean().item(),
            "sample_words": float(words) / len(images), "grad_norm": float(grad_norm),
            "reference_xe": cross_entropy.item()}


def scst(config: ScstConfig) -> Path:
    return run_stage(build_stage, config)


def build_stage(config: ScstConfig, runtime: Runtime, start: Start) -> Stage:
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


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv, prog="python -m training.scst", cls=ScstConfig,
                          description="Self-critical sequence training (CIDEr-D reward) from a "
                          "first-stage checkpoint.")
    return run_command(scst, config)


if __name__ == "__main__":
    sys.exit(main())
