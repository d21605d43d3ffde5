"""Training objectives of Show, Attend and Tell (paper sections 4.1 and 4.2), and
self-critical training's (training.scst).

Terms are computed per sentence, as in the paper, so their relative weights (lambda) mean
what the paper's mean; their sum is divided by the number of words only to keep the
gradient scale of a per-token cross-entropy.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from captioner.decoder import Decoder, TeacherForcedOutput
from captioner.vocab import Vocabulary

from .batches import ImageBatch, pad_captions
from .rewards import Samples


class LossTerms(NamedTuple):
    loss: torch.Tensor  # scalar to minimise
    cross_entropy: torch.Tensor  # mean per word, for reporting
    doubly_stochastic: torch.Tensor  # mean over sentences of sum_i (1 - sum_t alpha_ti)^2
    reinforce: torch.Tensor  # mean REINFORCE surrogate (0 for soft attention)
    entropy: torch.Tensor  # mean per word entropy of alpha_t
    log_likelihood: torch.Tensor  # mean log p(y | s, a) per sentence: updates the baseline


def caption_loss(out: TeacherForcedOutput, targets: torch.Tensor, mask: torch.Tensor,
                 doubly_stochastic: float = 1.0, entropy_weight: float = 0.0,
                 reinforce_weight: float = 1.0, baseline: float = 0.0,
                 words_per_process: float | None = None) -> LossTerms:
    """targets, mask: (B, T) word ids and 1 for real words (the <end> included), 0 for padding.

    The summed per-sentence loss is divided by the number of words, which keeps the gradient
    scale of a per-token cross-entropy. Data-parallel training passes words_per_process = the
    global batch's words / number of processes, so that averaging the processes' gradients
    (what DistributedDataParallel does) gives exactly one process's gradient over the whole
    global batch, even when the processes' batches differ in size or length.

    Soft attention:  -log p(y|a) + lambda * sum_i (1 - sum_t alpha_ti)^2
    Hard attention adds the REINFORCE term of the variational lower bound: the sampled
    locations' log-probabilities weighted by (log p(y|s,a) - b), with b a moving-average
    baseline, minus an entropy bonus lambda_e * H[alpha].
    """
    mask = mask.float()
    token_log_probs = -F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(),
                                       reduction="none").view_as(mask)  # (B, T)
    sentence_ll = (token_log_probs * mask).sum(1)  # (B,) log p(y | s, a)
    coverage = (out.alphas * mask.unsqueeze(2)).sum(1)  # (B, L) sum_t alpha_ti
    regulariser = ((1.0 - coverage) ** 2).sum(1)  # (B,)
    alphas = out.alphas.clamp_min(1e-12)
    entropy = -((alphas * alphas.log()).sum(2) * mask).sum(1)  # (B,) sum_t H[alpha_t]
    per_sentence = -sentence_ll + doubly_stochastic * regulariser
    if out.log_probs is not None:
        location_ll = (out.log_probs * mask).sum(1)  # (B,) log p(s | a)
        advantage = (sentence_ll - baseline).detach()
        reinforce = -advantage * location_ll
        per_sentence = per_sentence + reinforce_weight * reinforce - entropy_weight * entropy
    else:
        reinforce = torch.zeros_like(sentence_ll)
    words = mask.sum()
    return LossTerms(
        loss=per_sentence.sum() / (words if words_per_process is None else words_per_process),
        cross_entropy=-(token_log_probs * mask).sum() / words,
        doubly_stochastic=regulariser.mean(),
        reinforce=reinforce.mean(),
        entropy=entropy.sum() / words,
        log_likelihood=sentence_ll.mean().detach(),
    )


def self_critical_loss(drawn: Samples, advantage: torch.Tensor, entropy_weight: float = 0.0,
                       words_per_process: float | None = None) -> torch.Tensor:
    """The policy gradient surrogate -sum_j (r_j - b_j) log p(caption_j, locations_j), less
    entropy_weight times the attention's entropy (hard attention's bonus, as in the first
    stage), per sampled word: advantage (R,) is r - b of each sample in drawn. Data-parallel
    training passes words_per_process as caption_loss does."""
    policy = -(advantage * drawn.log_prob).sum()
    if entropy_weight:
        policy = policy - entropy_weight * drawn.entropy.sum()
    return policy / (drawn.mask.sum() if words_per_process is None else words_per_process)


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
    return caption_loss(out, targets, targets != Vocabulary.pad_id).cross_entropy
