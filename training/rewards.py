"""Self-critical training's samples and rewards (training.scst): captions drawn from the policy
with gradients (captioner.search.walk), their CIDEr-D against their image's references, and
the greedy captions' CIDEr-D that --reward-baseline greedy compares them with."""
from __future__ import annotations

from typing import NamedTuple

import torch

from captioner.decoder import Decoder
from captioner.options import MODEL_ALONE
from captioner.search import Policy, Speakable, content_word_mask, greedy, walk
from captioner.vocab import Vocabulary

from .batches import ImageBatch
from .cider import CiderD

END, PAD = Vocabulary.end_id, Vocabulary.pad_id


class Samples(NamedTuple):
    tokens: torch.Tensor  # (R, T) sampled word ids, <end> included, <pad> after it
    mask: torch.Tensor  # (R, T) 1 for sampled words (the <end> included)
    log_prob: torch.Tensor  # (R,) log p(words, locations): the policy's, differentiable
    entropy: torch.Tensor  # (R,) sum over steps of the attention's entropy


def sample_captions(decoder: Decoder, features: torch.Tensor, samples: int, max_length: int,
                    temperature: float = 1.0) -> Samples:
    """`samples` captions per image, drawn step by step with gradients from the decoder in
    its current mode (in training: dropout, and hard attention samples its locations). Rows
    n*samples .. n*samples + samples - 1 are image n's (each image's memory once).

    Words are drawn from the model's distribution over the words a caption may hold (as in
    decoding: never <pad>, <start> or <unk>; only <end> after max_length words) at
    `temperature`, and log_prob is theirs under it, plus the sampled locations'."""
    def draw(log_probs: torch.Tensor, step: int) -> torch.Tensor:
        return torch.multinomial(log_probs.detach().exp(), 1).squeeze(1)

    walked = walk(decoder, features, max_length, draw,
                  [Speakable(max_length), Policy(temperature)], samples=samples)
    is_end = walked.words == END
    mask = (is_end.cumsum(1) - is_end.long()) == 0  # (R, T) no <end> before the step
    log_prob = walked.score
    if walked.location_log_probs is not None:  # hard attention: the sampled locations too
        log_prob = log_prob + walked.location_log_probs.sum(1)
    alphas = walked.alphas.clamp_min(1e-12)  # (R, T, L)
    entropy = (-(alphas * alphas.log()).sum(2) * mask).sum(1)
    return Samples(walked.words.masked_fill(~mask, PAD), mask.float(), log_prob, entropy)


def set_dropout(decoder: Decoder, on: bool) -> None:
    """Switch the dropout layers alone; the rest keeps its mode (hard attention still samples
    its locations in training mode)."""
    for module in decoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.train(on)


def caption_rewards(scorer: CiderD, vocab: Vocabulary, images: list[int],
                    captions: list[list[int]], device: torch.device) -> torch.Tensor:
    """(R,) CIDEr-D of caption r (word ids) against the references of record images[r]."""
    return torch.tensor([scorer.score(image, vocab.decode(ids))
                         for image, ids in zip(images, captions)], device=device)


def greedy_rewards(decoder: Decoder, batch: ImageBatch, scorer: CiderD, vocab: Vocabulary,
                   max_length: int) -> torch.Tensor:
    """(I,) CIDEr-D of each image's greedy caption, decoded as at test time (eval mode)."""
    decoder.eval()
    try:
        with torch.no_grad():
            captions = greedy(decoder, batch.features, MODEL_ALONE,
                              content_word_mask(vocab, batch.features.device),
                              max_length=max_length)
    finally:
        decoder.train()
    return caption_rewards(scorer, vocab, batch.images.tolist(),
                           [caption.tokens for caption in captions], batch.features.device)
