"""Run a plan of training runs side by side on one GPU, under a deadline, and rank them on val.

    python -m scripts.sweep --runs-dir runs/sweep --deadline 380 -- \
        --data trainval.json --images images --cache-dir cache --device cuda

Decoder training is launch-bound on a GPU (13-word LSTM steps of a 64-caption batch leave
most of an H100 idle), so several runs as separate processes finish far sooner together
than one after another. Everything after `--` goes to every run. A run starts when the run
it warm-starts from has finished (its best.pt exists); at the deadline the runs still going
are stopped, keeping the best.pt of their last finished epoch. The table printed at the end
(also runs-dir/sweep.json) gives each run's best val BLEU-4 (beam 3) and its epoch.
Build the feature caches first (python -m training.cache --device cuda, once per image
size): runs that start together would otherwise each try to build the same cache.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from captioner.attention import ATTENTIONS

SHIPPED = "captioner/weights"


@dataclass
class Run:
    name: str
    module: str  # training.train or training.finetune
    flags: list[str]
    after: str = ""  # a run whose best.pt this one starts from (--init)
    process: subprocess.Popen | None = field(default=None, repr=False)


# The attention ablation (issue 15; docs/attention.md): every registered attention with the
# default recipe until early stopping, input feeding off as its own row, and self-critical
# training from the shipped soft model beside them. The 2026-11-26 plan (14x14 grid, dropout,
# lambda, fine-tuning) is in git history with its results (docs/results.md).
PLAN = [
    *(Run(name, "training.train", ["--attention", name]) for name in ATTENTIONS),
    Run("luong-general-no-feeding", "training.train",
        ["--attention", "luong-general", "--no-input-feeding"]),
    Run("scst-soft", "training.scst", ["--init", f"{SHIPPED}/soft_flickr8k.pt"]),
]


def best_val(log: Path) -> tuple[float, int, int]:
    """(best val BLEU-4, its epoch, epochs validated) from a run's log.jsonl."""
    if not log.exists():
        return 0.0, 0, 0
    vals = [json.loads(line) for line in log.read_text().splitlines() if '"val"' in line]
    if not vals:
        return 0.0, 0, 0
    best = max(vals, key=lambda v: v["bleu4"])
    return best["bleu4"], best["epoch"], len(vals)


def launch(run: Run, runs_dir: Path, common: list[str]) -> None:
    flags = list(run.flags)
    if run.after:
        flags += ["--init", str(runs_dir / run.after / "best.pt")]
    out = runs_dir / run.name
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", run.module, *common, *flags, "--out", str(out)]
    print(f"[{time.strftime('%H:%M:%S')}] start {run.name}: {' '.join(cmd[1:])}", flush=True)
    # Own process group: stopping a run also stops its DataLoader workers. The child keeps
    # its own handle on the log file.
    with open(out / "stderr.log", "w") as log:
        run.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m scripts.sweep",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="runs/sweep")
    parser.add_argument("--deadline", type=float, default=3600, help="seconds for all runs")
    parser.add_argument("--only", nargs="*", help="names of the plan's runs to do")
    args = parser.parse_args(argv[:split])
    common = argv[split + 1:]
    runs_dir = Path(args.runs_dir)
    plan = [r for r in PLAN if not args.only or r.name in args.only]
    started = time.monotonic()
    waiting = list(plan)
    while time.monotonic() - started < args.deadline:
        for run in list(waiting):
            source = next((r for r in plan if r.name == run.after), None)
            if source is not None and (source.process is None or source.process.poll() is None):
                continue  # its warm start is still training (or waiting itself)
            waiting.remove(run)
            if source is not None and not (runs_dir / source.name / "best.pt").exists():
                print(f"skip {run.name}: {source.name} left no best.pt", flush=True)
                continue
            launch(run, runs_dir, common)
        if not waiting and all(r.process.poll() is not None for r in plan if r.process):
            break
        time.sleep(2)
    for run in plan:
        if run.process is not None and run.process.poll() is None:
            print(f"deadline: stopping {run.name}", flush=True)
            os.killpg(run.process.pid, signal.SIGTERM)
    for run in plan:
        if run.process is not None:
            run.process.wait()
    rows = []
    for run in plan:
        bleu4, epoch, epochs = best_val(runs_dir / run.name / "log.jsonl")
        code = None if run.process is None else run.process.returncode
        rows.append({"name": run.name, "val_bleu4": bleu4, "best_epoch": epoch,
                     "epochs_validated": epochs, "exit": code})
        print(f"{run.name:18s} val BLEU-4 {100 * bleu4:5.2f} at epoch {epoch:2d} of "
              f"{epochs:2d} validated (exit {code})", flush=True)
    (runs_dir / "sweep.json").write_text(json.dumps(rows, indent=1))
    print(f"{time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
