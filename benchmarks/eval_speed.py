"""Batched beam-search decoding of a split from cached features, and the full evaluate command.

    python -m benchmarks.eval_speed --checkpoint PATH --data ../shared/data/flickr8k \
        --cache-dir cache [--split test] [--beam 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

from captioner import Captioner
from training.data import load_karpathy
from training.evaluate import split_features

from .common import machine


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    captioner = Captioner.from_checkpoint(args.checkpoint)
    dataset = load_karpathy(args.data)
    cache = split_features(dataset, args.split, args.cache_dir, captioner.config.encoder,
                           captioner.config.image_size)
    rows = cache.rows([r.path for r in dataset.split(args.split)])
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, len(rows), args.batch_size):
            captioner.caption_features(cache.batch(rows[i:i + args.batch_size]), cache.grid,
                                       beam_size=args.beam)
        runs.append(time.perf_counter() - start)
    print(f"beam-{args.beam} decoding of {len(rows)} {args.split} images from cached features: "
          f"{sorted(runs)[1]:.1f} s (median of 3; batches of {args.batch_size})")
    command = [sys.executable, "-m", "training.evaluate", "--data", args.data, "--split",
               args.split, "--beam", str(args.beam), "--cache-dir", args.cache_dir]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"full evaluate command (start-up, decoding, pycocoevalcap metrics incl. METEOR): "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
