"""A run's log.jsonl (one JSON line per logging step and per validation) and the curves.png
drawn from it."""
from __future__ import annotations

import json
from pathlib import Path


class RunLog:
    def __init__(self, out: Path):
        self.path = out / "log.jsonl"
        self.out = out

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines from steps that the resumed run will redo."""
        kept = [r for r in self.records() if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        train = [r for r in records if r["type"] == "train"]
        val = [r for r in records if r["type"] == "val"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        # The first stages log their cross-entropy, self-critical training its CIDEr-D reward.
        for key, label in (("ce", "cross-entropy"), ("reward", "CIDEr-D reward of samples")):
            if train and key in train[-1]:
                left.plot([r["step"] for r in train], [r[key] for r in train], label=label)
        left.plot([r["step"] for r in train], [r["loss"] for r in train], label="loss", alpha=0.6)
        left.set_xlabel("step")
        left.legend()
        right.plot([r["step"] for r in val], [100 * r["bleu4"] for r in val], marker="o")
        right.set_xlabel("step")
        right.set_ylabel("val BLEU-4")
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=80)
        plt.close(fig)
