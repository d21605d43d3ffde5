"""Assemble results/ablation_attention.json (and print the README's table) from the runs of
scripts/device_ablation.sh and the CPU speed benchmark:

    python scripts/ablation_attention.py results/ablation_attention results/attention_speed.json

FOLDER holds sweep.json, <run>_log.jsonl (val BLEU-4 per epoch) and <run>_test_beam3.json
(evaluate's result, rescored with Java for METEOR) for each run; FOLDER/cpu_rerun holds the
same two files for rows rerun on the CPU to full length (`training.train --attention NAME`),
added as extra rows "NAME, full length on the CPU".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = ["soft", "hard", "static", "luong-dot", "luong-general", "luong-concat", "local",
        "luong-general-no-feeding"]
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


EARLY_STOP_PATIENCE = 4  # the default recipe's: a run that ended this long after its best stopped


def rerun_rows(folder: Path, speed: dict) -> list[dict]:
    rows = []
    for log in sorted((folder / "cpu_rerun").glob("*_log.jsonl")):
        name = log.name.removesuffix("_log.jsonl")
        vals = [json.loads(line)["bleu4"] for line in log.read_text().splitlines()
                if '"val"' in line]
        best = max(range(len(vals)), key=vals.__getitem__)
        run = {"val_bleu4": vals[best], "best_epoch": best + 1,
               "exit": 0 if len(vals) - (best + 1) >= EARLY_STOP_PATIENCE else 1}
        extra = row(folder / "cpu_rerun", name, {name: run}, speed)
        extra["variant"] = f"{name}, full length on the CPU"
        rows.append(extra)
    return rows


def main() -> None:
    folder, speed_file = Path(sys.argv[1]), Path(sys.argv[2])
    sweep = {r["name"]: r for r in json.loads((folder / "sweep.json").read_text())}
    speed = json.loads(speed_file.read_text())
    rows = [row(folder, name, sweep, speed) for name in ROWS] + rerun_rows(folder, speed)
    out = Path("results/ablation_attention.json")
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print("| variant | val BLEU-4 (epoch / run, stopped by) | test BLEU-1 | BLEU-4 | METEOR "
          "| ROUGE-L | CIDEr | decode ms/step | train captions/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t = r["test"]
        print(f"| {r['variant']} | {r['val_bleu4']:.2f} ({r['best_epoch']} / {r['epochs_run']}, "
              f"{r['stopped_by']}) | {t['BLEU-1']:.1f} | {t['BLEU-4']:.1f} | {t['METEOR']:.2f} "
              f"| {t['ROUGE-L']:.1f} | {t['CIDEr']:.1f} | {r['decode_ms_per_step']:.2f} "
              f"| {r['train_captions_per_s']:.0f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
