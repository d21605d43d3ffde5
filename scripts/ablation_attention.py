"""Assemble results/ablation_attention.json (and print the README's table) from the runs of
scripts/device_ablation.sh and the CPU speed benchmark:

    python -m scripts.ablation_attention results/ablation_attention results/attention_speed.json

FOLDER holds sweep.json, <run>_log.jsonl (val BLEU-4 per epoch) and <run>_test_beam3.json
(evaluate's result, rescored with Java for METEOR) for each run; FOLDER/cpu_full_length holds
the same two files for variants trained again on the CPU until early stopping
(`training.train --attention NAME`), once they have test captions. A rerun that early
stopping ended becomes the row NAME (the variant's full-length numbers) and the device run it
replaces stays as an extra row ("NAME, H200 run cut by time" when the time budget had ended
it); a rerun that ended otherwise (its --epochs cap, or stopped by hand) is the extra row
"NAME, CPU rerun ended before early stopping".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from captioner.attention import ATTENTIONS
from scripts.sweep import best_val
from training.config import TrainConfig

# every registered attention, and input feeding off as its own row (scripts.sweep's PLAN)
ROWS = [*ATTENTIONS, "luong-general-no-feeding"]
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def row(folder: Path, name: str, sweep: dict, speed: dict) -> dict:
    vals = [json.loads(line) for line in (folder / f"{name}_log.jsonl").read_text().splitlines()
            if '"val"' in line]
    test = json.loads((folder / f"{name}_test_beam3.json").read_text())
    if test["metrics"]["METEOR"] is None:
        raise SystemExit(f"{name}: METEOR missing; rescore first (training.evaluate --rescore)")
    run = sweep[name]
    return {
        "variant": name,
        "val_bleu4": round(100 * run["val_bleu4"], 2),
        "best_epoch": run["best_epoch"],
        "epochs_run": len(vals),
        # exit 0: early stopping ended the run; otherwise the sweep's time budget did
        "stopped_by": "early stopping" if run["exit"] == 0 else "time budget",
        "val_bleu4_by_epoch": [round(100 * v["bleu4"], 2) for v in vals],
        "test": {k: round(100 * test["metrics"][k], 2) for k in METRICS},
        "test_diversity": test["diversity"],
        **speed["variants"][name],
    }


# the default recipe's: a run that ended this long after its best was stopped by it
EARLY_STOP_PATIENCE = TrainConfig.early_stop_patience


def rerun_rows(folder: Path, speed: dict) -> dict[str, dict]:
    """The CPU reruns that have test captions, by variant name."""
    rows = {}
    for test in sorted((folder / "cpu_full_length").glob("*_test_beam3.json")):
        name = test.name.removesuffix("_test_beam3.json")
        if name not in ROWS:
            raise SystemExit(f"{test}: {name} is not a row of the ablation ({', '.join(ROWS)})")
        bleu4, epoch, validated = best_val(folder / "cpu_full_length" / f"{name}_log.jsonl")
        run = {"val_bleu4": bleu4, "best_epoch": epoch,
               "exit": 0 if validated - epoch >= EARLY_STOP_PATIENCE else 1}
        rerun = row(folder / "cpu_full_length", name, {name: run}, speed)
        if rerun["stopped_by"] != "early stopping":
            rerun["stopped_by"] = "ended before early stopping"
        rows[name] = {**rerun, "ran_on": "CPU"}
    return rows


def ablation_rows(folder: Path, speed: dict) -> list[dict]:
    """One row per variant, full length where a run reached early stopping, then the extras."""
    sweep = {r["name"]: r for r in json.loads((folder / "sweep.json").read_text())}
    reruns = rerun_rows(folder, speed)
    rows, extras = [], []
    for name in ROWS:
        device = {**row(folder, name, sweep, speed), "ran_on": "H200"}
        rerun = reruns.get(name)
        if rerun is not None and rerun["stopped_by"] == "early stopping":
            rows.append(rerun)
            cut = " cut by time" if device["stopped_by"] == "time budget" else ""
            extras.append({**device, "variant": f"{name}, H200 run{cut}"})
        else:
            rows.append(device)
            if rerun is not None:
                extras.append({**rerun, "variant": f"{name}, CPU rerun ended before early "
                                                   "stopping"})
    return rows + extras


def main() -> None:
    folder, speed_file = Path(sys.argv[1]), Path(sys.argv[2])
    speed = json.loads(speed_file.read_text())
    rows = ablation_rows(folder, speed)
    out = Path("results/ablation_attention.json")
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print("| variant | trained on | val BLEU-4 (epoch / run, stopped by) | test BLEU-1 | BLEU-4 "
          "| METEOR | ROUGE-L | CIDEr | words | distinct | decode ms/step | train captions/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t, d = r["test"], r["test_diversity"]
        print(f"| {r['variant']} | {r['ran_on']} | {r['val_bleu4']:.2f} ({r['best_epoch']} / "
              f"{r['epochs_run']}, {r['stopped_by']}) | {t['BLEU-1']:.1f} | {t['BLEU-4']:.1f} "
              f"| {t['METEOR']:.2f} | {t['ROUGE-L']:.1f} | {t['CIDEr']:.1f} "
              f"| {d['distinct_words']} | {d['distinct_captions']:.0%} "
              f"| {r['decode_ms_per_step']:.2f} | {r['train_captions_per_s']:.0f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
