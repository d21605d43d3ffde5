"""Training memory does not grow with the dataset: the feature cache is memory-mapped.

    python -m benchmarks.train_memory [--images 8000,123287] [--steps 30]

For each size, writes a sparse cache of that many images (7x7 x 1280 float16, the real
layout: manifest + shards; sparse files take no disk), trains --steps steps of batch 64 on
random captions of random images through the real CachedBatches + train_step, and prints the
process's anonymous memory (heap: what training itself holds) and its file-backed resident
memory (cache pages the kernel can drop at any time).
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch

from captioner import build_decoder
from training.features import CACHE_VERSION, PROGRESS, SHARD_ROWS, open_cache
from training.config import TrainConfig
from training.distributed import Runtime
from training.batches import CachedBatches
from training.loop import Progress, make_optimizer, train_step

from .common import machine


def memory_mb() -> dict[str, float]:
    values = {}
    for line in open("/proc/self/status"):
        key, _, rest = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def sparse_cache(folder: Path, images: int, locations: int = 49, dim: int = 1280) -> None:
    manifest = {"version": CACHE_VERSION, "key": {}, "shape": [images, locations, dim],
                "grid": [7, 7], "images": [f"{i}.jpg" for i in range(images)],
                "shard_rows": SHARD_ROWS}
    for k, start in enumerate(range(0, images, SHARD_ROWS)):
        rows = min(SHARD_ROWS, images - start)
        with open(folder / f"features-{k:05d}.f16", "wb") as f:
            f.truncate(rows * locations * dim * 2)
    (folder / PROGRESS).write_text(str(images))
    (folder / "manifest.json").write_text(json.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--images", default="8000,123287")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {machine()}")
    for images in map(int, args.images.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            sparse_cache(folder, images)
            cache = open_cache(folder)
            rng = random.Random(0)
            table = [(rng.randrange(images), [1] + [rng.randrange(4, 2541) for _ in range(12)]
                      + [2]) for _ in range(64 * args.steps)]
            batches = CachedBatches(table, [list(range(i, i + 64))
                                            for i in range(0, len(table), 64)], cache)
            config = TrainConfig(data="-")
            torch.manual_seed(0)
            decoder = build_decoder(config.model_config(2541, 1280))
            optimizer = make_optimizer([{"params": decoder.parameters()}], config)
            runtime, progress = Runtime(torch.device("cpu")), Progress()
            scaler = runtime.grad_scaler()
            for i in range(len(batches)):
                train_step(decoder, batches[i], optimizer, config, progress, runtime, scaler)
            m = memory_mb()
            size_gb = images * 49 * 1280 * 2 / 1e9
            print(f"{images:7d} images ({size_gb:5.1f} GB cache): heap (RssAnon) "
                  f"{m['RssAnon']:6.0f} MB, mapped cache pages (RssFile) {m['RssFile']:5.0f} MB "
                  f"after {args.steps} steps")
            del cache, batches


if __name__ == "__main__":
    main()
