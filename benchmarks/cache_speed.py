"""Feature caching throughput (images/s) with DataLoader workers decoding the JPEGs.

    python -m benchmarks.cache_speed --data ../shared/data/flickr8k [--images 512]

Caches the first N images into a temporary folder with 0, 1 and 2 DataLoader workers at
the default encoder batch (8), and with 2 workers at batch 32, and reports images/s for each.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from training.data import load_karpathy
from training.features import build_cache

from .common import machine


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    dataset = load_karpathy(args.data)
    paths = [r.path for r in dataset.images[:args.images]]
    for batch_size, workers in ((8, 0), (8, 1), (8, 2), (32, 2)):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            build_cache(folder, dataset.image_root, paths, args.encoder, args.image_size,
                        batch_size=batch_size, workers=workers)
            seconds = time.perf_counter() - start
        print(f"{args.encoder}@{args.image_size}, batch {batch_size:2d}, {workers} worker(s): "
              f"{len(paths) / seconds:6.1f} images/s ({len(paths)} images, {seconds:.1f} s)")


if __name__ == "__main__":
    main()
