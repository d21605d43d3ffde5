"""What SCST improves, on the tests' tiny generated dataset (a minute on a CPU): a first stage
that memorises 8 photos, then SCST at the given learning rates; for each model the greedy
caption's CIDEr-D and the expected CIDEr-D of sampled captions (64 per photo, fixed seed) on
the training photos, for each SCST baseline (training.scst --baseline).

    python -m benchmarks.scst_objective [--lr 2e-3 5e-4] [--baseline mean greedy]
        [--work /tmp/scst_objective]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", nargs="+", default=["2e-3", "5e-4"])
    parser.add_argument("--baseline", nargs="+", default=["mean", "greedy"])
    parser.add_argument("--work", default="/tmp/scst_objective")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))  # the generated dataset and the tests' settings
    import torch

    from captioner.decoding import greedy
    from captioner.models import load_decoder
    from fixture_data import make_dataset
    from test_scst import sampled_cider, scst_args
    from test_training import tiny_args
    from training.cider import CiderD
    from training.config import parse_config
    from training.data import load_karpathy
    from training.features import ensure_cache
    from training.scst import ScstConfig, scst
    from training.train import train
    from captioner import load_checkpoint

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shapes = (make_dataset(work), work / "cache")

    def greedy_cider(path: Path) -> float:
        checkpoint = load_checkpoint(path)
        dataset = load_karpathy(shapes[0])
        records = dataset.split("train")
        cache = ensure_cache(dataset, shapes[1], "efficientnet_lite0", 64)
        features = cache.batch(cache.rows([r.path for r in records]))
        scorer = CiderD({i: r.captions for i, r in enumerate(records)})
        with torch.inference_mode():
            hyps = greedy(load_decoder(checkpoint).eval(), features, 20)
        return sum(scorer.score(i, checkpoint.vocab.decode(h.tokens))
                   for i, h in enumerate(hyps)) / len(hyps)

    first = work / "xe"
    train(parse_config(tiny_args(shapes, first, "--epochs", "8", "--early-stop-patience", "100")))
    rows = [("first stage", first / "last.pt")]
    for baseline in args.baseline:
        for lr in args.lr:
            out = work / f"scst-{baseline}-{lr}"
            scst(parse_config(scst_args(shapes, first / "last.pt", out, "--epochs", "20", "--lr",
                                        lr, "--baseline", baseline), cls=ScstConfig))
            rows.append((f"SCST {baseline} baseline, lr {lr}", out / "last.pt"))
    for name, path in rows:
        print(f"{name:34s} greedy CIDEr-D {greedy_cider(path):5.2f}   expected sampled "
              f"CIDEr-D {sampled_cider(path, shapes):5.2f}")


if __name__ == "__main__":
    main()
