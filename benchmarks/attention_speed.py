"""Each attention variant's cost on this machine, for the ablation (docs/attention.md):
training captions/s (the real training step: forward, loss, backward, optimizer; batch 64,
13-word captions, random features of Flickr8k's 7x7x1280 shape) and beam-3 decoding
milliseconds per step (one photo, the decoding fast path, default sizes). The weights are
random: a step's arithmetic does not depend on their values.

    python -m benchmarks.attention_speed [--out results/attention_speed.json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from captioner import ModelConfig, build_decoder
from captioner.search import search
from captioner.attention import ATTENTIONS

from .common import machine
from .train_speed import captions_per_second

# The ablation's rows: every registered attention, and Luong general without input feeding.
VARIANTS = {name: {} for name in ATTENTIONS}
VARIANTS["luong-general-no-feeding"] = {"attention": "luong-general", "input_feeding": False}


def decode_ms_per_step(model: dict, repeats: int = 20, beam: int = 3, vocab: int = 2541) -> float:
    torch.manual_seed(0)
    decoder = build_decoder(ModelConfig(vocab_size=vocab, **model)).eval()
    features = torch.randn(1, 49, 1280)
    content_words = torch.arange(vocab) >= 4  # the repeat penalty costs the same for any mask
    steps = 0
    real_step = decoder.step

    def counted(*args):
        nonlocal steps
        steps += 1
        return real_step(*args)
    decoder.step = counted
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            search(decoder, features, beam_size=beam, content_words=content_words)
        steps = 0
        started = time.perf_counter()
        for _ in range(repeats):
            search(decoder, features, beam_size=beam, content_words=content_words)
        elapsed = time.perf_counter() - started
    return 1000 * elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--out", help="also write the numbers here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    print(f"machine: {machine()}")
    for name, overrides in VARIANTS.items():
        model = {"attention": name, **overrides}
        decode = decode_ms_per_step(model)
        attention = model.pop("attention")
        train = captions_per_second(attention, 64, args.train_steps, torch.device("cpu"), **model)
        rows[name] = {"decode_ms_per_step": round(decode, 3), "train_captions_per_s": round(train, 1)}
        print(f"{name:26s} decode {decode:6.2f} ms/step (beam 3)   train {train:7.1f} captions/s",
              flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"machine": machine(), "threads": args.threads,
                       "date": time.strftime("%Y-%m-%d"), "variants": rows}, f, indent=1)


if __name__ == "__main__":
    main()
