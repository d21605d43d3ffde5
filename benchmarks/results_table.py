"""Recompute the README's Flickr8k results table from the shipped checkpoints.

    python -m benchmarks.results_table --data ../shared/data/flickr8k [--cache-dir cache]

Runs `training.evaluate` for each shipped model (soft, hard) at beam 1, 3 and 5 on the test
split, writes each result JSON to results/, and prints a Markdown table next to the paper's
Table 1 Flickr8k rows (Xu et al. 2015; they report no ROUGE-L or CIDEr there), with what a
reader notices: captions that repeat a trigram, captions that use a content word twice,
distinct words, distinct captions.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from captioner.inference import DEFAULT_CHECKPOINTS

KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
DIVERSITY = ("captions_repeating_a_trigram", "captions_repeating_a_content_word",
             "distinct_words", "distinct_captions")
HEADERS = KEYS + ("loops", "word twice", "words", "distinct")
PAPER = {
    "paper: soft attention (VGG)": (67, 44.8, 29.9, 19.5, 18.93) + (None,) * 6,
    "paper: hard attention (VGG)": (67, 45.7, 31.4, 21.3, 20.30) + (None,) * 6,
}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beams", default="1,3,5")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--threads", default="2", help="torch threads of each evaluation")
    parser.add_argument("--models", default=",".join(DEFAULT_CHECKPOINTS),
                        help="which shipped models (comma-separated)")
    args = parser.parse_args()
    rows = dict((name, values) for name, values in PAPER.items())
    for kind in args.models.split(","):
        checkpoint = DEFAULT_CHECKPOINTS[kind]
        for beam in map(int, args.beams.split(",")):
            out = Path(args.results_dir) / f"{kind}_{args.split}_beam{beam}.json"
            subprocess.run([sys.executable, "-m", "training.evaluate", "--checkpoint",
                            str(checkpoint), "--data", args.data, "--split", args.split,
                            "--beam", str(beam), "--cache-dir", args.cache_dir,
                            "--out", str(out), "--threads", args.threads], check=True,
                           stdout=subprocess.DEVNULL)
            result = json.loads(out.read_text())
            metrics, diversity = result["metrics"], result["diversity"]
            rows[f"ours: {kind}, beam {beam}"] = tuple(
                None if metrics[k] is None else 100 * metrics[k] for k in KEYS) + tuple(
                diversity[k] for k in DIVERSITY)
    print("| model | " + " | ".join(HEADERS) + " |")
    print("|" + " --- |" * (len(HEADERS) + 1))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(_cell(k, v) for k, v in zip(HEADERS, values)) + " |")


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key == "distinct":
        return f"{100 * value:.0f}%"
    if key in ("loops", "word twice", "words"):
        return str(value)
    return f"{value:.2f}" if key == "METEOR" else f"{value:.1f}"


if __name__ == "__main__":
    main()
