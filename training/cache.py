"""Run the frozen encoder once over a dataset and store the grids on disk.

    python -m training.cache --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --encoder efficientnet_lite0 --image-size 224 --cache-dir cache
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from captioner.encoder import ENCODERS
from captioner.flags import positive_int
from captioner.images import ImageError

from .commands import prog
from .data import DatasetError, load_karpathy
from .features import SHARD_ROWS, ensure_cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("cache"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Karpathy-format dataset JSON")
    parser.add_argument("--images", help="image folder (default: <data dir>/images)")
    parser.add_argument("--encoder", default="efficientnet_lite0", choices=sorted(ENCODERS))
    parser.add_argument("--encoder-weights", help="weights file (resnet101 / vgg19 only)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="images per encoder call (small batches stay in the CPU's cache)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding JPEGs")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="torch threads for the encoder")
    parser.add_argument("--shard-rows", type=int, default=SHARD_ROWS, help="images per shard file")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where the encoder runs (on cuda, raise --batch-size and --workers)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda, but no CUDA GPU is visible", file=sys.stderr)
            return 2
    try:
        dataset = load_karpathy(args.data, args.images)
        started = time.perf_counter()
        cache = ensure_cache(dataset, args.cache_dir, args.encoder, args.image_size,
                             args.encoder_weights, args.batch_size, args.workers,
                             args.shard_rows, args.device)
    except (DatasetError, ImageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    n = cache.features.shape[0]
    print(f"{cache.folder}: {n} images, grid {cache.grid}, dim {cache.features.shape[2]} "
          f"({seconds:.1f} s, {n / max(seconds, 1e-9):.1f} images/s including any cached part)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
