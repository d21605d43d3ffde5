"""Turn a training checkpoint into a shipped model: no optimizer state, float16 weights.

    python -m training.export --checkpoint runs/soft/best.pt --out captioner/weights/soft_flickr8k.pt
"""
from __future__ import annotations

import argparse
import sys

from captioner.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from captioner.inference import build_decoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--float32", action="store_true", help="keep float32 weights")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
        build_decoder(checkpoint, args.checkpoint)  # refuse to ship weights that do not load
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checkpoint.training = None
    checkpoint.metadata = {**checkpoint.metadata, "exported_from": str(args.checkpoint)}
    save_checkpoint(checkpoint, args.out, half=not args.float32)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
