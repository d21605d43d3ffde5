"""What SCST improves, on the tests' tiny generated dataset (a minute or two on a CPU): a first stage
that memorises 8 photos, then SCST at the given learning rates; for each model the greedy
caption's CIDEr-D and the expected CIDEr-D of sampled captions (64 per photo, fixed seed) on
the training photos, for each SCST baseline (training.scst --reward-baseline), and the share of
sampled captions that beat their baseline over the run (from its log).

    python -m benchmarks.scst_objective [--lr 2e-3 5e-4] [--reward-baseline mean greedy]
        [--work /tmp/scst_objective]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", nargs="+", default=["2e-3", "5e-4"])
    from training.config import REWARD_BASELINES

    parser.add_argument("--reward-baseline", nargs="+", default=list(REWARD_BASELINES),
                        choices=REWARD_BASELINES)
    parser.add_argument("--work", default="/tmp/scst_objective")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))  # the generated dataset and the tests' settings
    import torch

    from captioner.build import load_decoder
    from captioner.search import content_word_mask, greedy
    from fixture_data import make_dataset
    from test_scst import sampled_cider, scst_args, training_photos
    from test_training import read_log, tiny_args
    from training.config import parse_config
    from training.config import ScstConfig
    from training.scst import scst
    from training.train import train
    from captioner import load_checkpoint

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shapes = (make_dataset(work), work / "cache")

    def greedy_cider(path: Path) -> float:
        checkpoint = load_checkpoint(path)
        records, features, scorer = training_photos(shapes)
        with torch.inference_mode():
            hyps = greedy(load_decoder(checkpoint).eval(), features, max_length=20,
                          content_words=content_word_mask(checkpoint.vocab))
        return sum(scorer.score(i, checkpoint.vocab.decode(h.tokens))
                   for i, h in enumerate(hyps)) / len(hyps)

    first = work / "xe"
    train(parse_config(tiny_args(shapes, first, "--epochs", "8", "--early-stop-patience", "100")))
    rows = [("first stage", first / "last.pt", None)]
    for baseline in args.reward_baseline:
        for lr in args.lr:
            out = work / f"scst-{baseline}-{lr}"
            scst(parse_config(scst_args(shapes, first / "last.pt", out, "--epochs", "20", "--lr",
                                        lr, "--reward-baseline", baseline), cls=ScstConfig))
            log = [r for r in read_log(out) if r["type"] == "train"]
            positive = sum(r["positive_advantages"] for r in log) / len(log)
            rows.append((f"SCST {baseline} baseline, lr {lr}", out / "last.pt", positive))
    for name, path, positive in rows:
        beat = "" if positive is None else f"   samples beating their baseline {positive:.0%}"
        print(f"{name:34s} greedy CIDEr-D {greedy_cider(path):5.2f}   expected sampled "
              f"CIDEr-D {sampled_cider(path, shapes):5.2f}{beat}")


if __name__ == "__main__":
    main()
