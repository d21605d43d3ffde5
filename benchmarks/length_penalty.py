"""Score checkpoints on the validation split at several length penalties (beam search ranks
by log p / (words + 1) ** P), so the decoding default is chosen on val, never on test.

    python -m benchmarks.length_penalty --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --cache-dir cache --checkpoint runs/soft_scst/best.pt runs/hard_scst/best.pt \
        --penalties 0,0.5,1 --out results/length_penalty_val.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from captioner import Captioner, load_checkpoint
from training.data import load_karpathy
from training.evaluate import evaluate, split_features
from training.features import cached_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--checkpoint", nargs="+", required=True)
    parser.add_argument("--penalties", default="0,0.5,1")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_karpathy(args.data)
    rows = []
    for path in args.checkpoint:
        checkpoint = load_checkpoint(path)
        captioner = Captioner.from_parts(checkpoint, name=path)
        features = cached_features(split_features(dataset, "val", args.cache_dir,
                                         checkpoint.config.encoder, checkpoint.config.image_size))
        for penalty in map(float, args.penalties.split(",")):
            result = evaluate(captioner, dataset, "val", features, args.beam,
                              length_penalty=penalty)
            row = {"checkpoint": path, "length_penalty": penalty, **result["metrics"],
                   **result["diversity"]}
            rows.append(row)
            print(f"{path}  P={penalty:g}  " + "  ".join(
                f"{k} {100 * row[k]:.2f}" for k in ("BLEU-4", "METEOR", "CIDEr")
                if row[k] is not None) + f"  words/caption {row['mean_words']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
