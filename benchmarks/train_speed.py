"""Training throughput (captions/s) for soft and hard attention at the default model size.

    python -m benchmarks.train_speed [--batch-size 128] [--steps 10]

Random features stand in for the cache (same shapes as Flickr8k at 224 px: 49 x 1280), so
this measures the decoder's forward + backward + Adam step alone.
"""
from __future__ import annotations

import argparse
import time

import torch

from captioner import Decoder, ModelConfig
from captioner.losses import caption_loss

from .common import machine

FLICKR8K_TRAIN_CAPTIONS = 30_000


def captions_per_second(attention: str, batch_size: int, steps: int, length: int = 13,
                        locations: int = 49, vocab: int = 2541) -> float:
    torch.manual_seed(0)
    decoder = Decoder(ModelConfig(vocab_size=vocab, attention=attention)).train()
    optimizer = torch.optim.Adam(decoder.parameters(), 4e-4)
    features = torch.randn(batch_size, locations, 1280)
    captions = torch.randint(4, vocab, (batch_size, length + 1))
    captions[:, 0] = 1

    def step():
        out = decoder(features, captions)
        targets = captions[:, 1:]
        terms = caption_loss(out, targets, targets != 0, entropy_weight=0.002, baseline=-40.0)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    for attention in ("soft", "hard"):
        rate = captions_per_second(attention, args.batch_size, args.steps)
        print(f"{attention}: {rate:6.1f} captions/s (batch {args.batch_size}, 13 words, 7x7 grid) "
              f"-> one Flickr8k epoch ({FLICKR8K_TRAIN_CAPTIONS:,} captions) in "
              f"{FLICKR8K_TRAIN_CAPTIONS / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
