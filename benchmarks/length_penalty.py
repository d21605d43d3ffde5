"""Score checkpoints on the validation split at several length penalties (beam search ranks
by log p / (words + 1) ** P), repeat-blocking n-gram sizes (no caption holds an n-gram of N
words twice) and repeat penalties (each earlier use of a content word costs R), so the decoding
defaults are chosen on val, never on test.

    python -m benchmarks.length_penalty --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --cache-dir cache --checkpoint captioner/weights/soft_flickr8k.pt \
        --penalties 0,0.5,1 --repeat-ngrams 3,2 --repeat-penalties 0,2 \
        --out results/decoding_val.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from captioner import Captioner, load_checkpoint
from captioner.options import DEFAULT_OPTIONS, DecodeOptions
from training.data import load_karpathy
from training.evaluate import checkpoint_features, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--checkpoint", nargs="+", required=True)
    parser.add_argument("--penalties", default=f"{DEFAULT_OPTIONS.length_penalty:g}")
    parser.add_argument("--repeat-ngrams", default=str(DEFAULT_OPTIONS.repeat_ngram),
                        help="n-gram sizes to block repeats of (0: no blocking)")
    parser.add_argument("--repeat-penalties", default=f"{DEFAULT_OPTIONS.repeat_penalty:g}",
                        help="log-probability costs of each earlier use of a content word")
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
        features = checkpoint_features(checkpoint, captioner, dataset, "val", args.cache_dir)
        settings = [(penalty, ngram, repeat) for penalty in map(float, args.penalties.split(","))
                    for ngram in map(int, args.repeat_ngrams.split(","))
                    for repeat in map(float, args.repeat_penalties.split(","))]
        for penalty, ngram, repeat in settings:
            options = DecodeOptions(beam_size=args.beam, length_penalty=penalty,
                                    repeat_ngram=ngram, repeat_penalty=repeat)
            result = evaluate(captioner, dataset, "val", features, options)
            row = {"checkpoint": path, "length_penalty": penalty, "repeat_ngram": ngram,
                   "repeat_penalty": repeat, **result["metrics"], **result["diversity"]}
            rows.append(row)
            print(f"{path}  P={penalty:g}  n-gram {ngram}  R={repeat:g}  " + "  ".join(
                f"{k} {100 * row[k]:.2f}" for k in ("BLEU-4", "METEOR", "CIDEr")
                if row[k] is not None) + f"  words {row['distinct_words']}  distinct "
                f"{100 * row['distinct_captions']:.0f}%  words/caption {row['mean_words']}",
                flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
