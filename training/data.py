"""Caption datasets in Karpathy's split JSON format (dataset_coco.json, dataset_flickr8k.json, ...).

Problems with the data (missing JSON fields, missing images, empty captions) are collected
into one DataReport and raised as a DatasetError before any training starts, so a user sees
counts and the first few names instead of a crash deep inside a DataLoader worker.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from captioner.vocab import tokenize

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the image root: "filepath/filename" (COCO) or "filename"
    split: str  # train / val / test ("restval" is folded into train)
    captions: tuple[tuple[str, ...], ...]  # tokenized reference captions
    raw: tuple[str, ...]  # the captions as written, for evaluation references


@dataclass
class DataReport:
    """What is wrong with a dataset: counts plus the first few offending names."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, problem: str, name: str) -> None:
        self.problems.setdefault(problem, []).append(name)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def summary(self, examples: int = 5) -> str:
        lines = []
        for problem, names in self.problems.items():
            shown = ", ".join(names[:examples]) + (", ..." if len(names) > examples else "")
            lines.append(f"{len(names)} {problem}: {shown}")
        return "\n".join(lines)


@dataclass
class CaptionDataset:
    name: str
    image_root: Path
    images: list[ImageRecord]

    def split(self, *names: str) -> list[ImageRecord]:
        return [record for record in self.images if record.split in names]

    def image_path(self, record: ImageRecord) -> Path:
        return self.image_root / record.path


def resolve_dataset_file(path: str | os.PathLike) -> Path:
    """A dataset JSON, or a folder holding exactly one dataset_*.json (e.g. dataset_coco.json)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("dataset_*.json"))
        if len(found) != 1:
            raise DatasetError(f"{path}: expected one dataset_*.json in this folder, found "
                               f"{len(found)}; pass the JSON file itself")
        return found[0]
    return path


def load_karpathy(json_path: str | os.PathLike, image_root: str | os.PathLike | None = None
                  ) -> CaptionDataset:
    """Read a Karpathy-format JSON (or a folder with one). Images: image_root, default
    <json dir>/images, or the JSON's own folder when COCO-style `filepath`s are used."""
    json_path = resolve_dataset_file(json_path)
    if not json_path.is_file():
        raise DatasetError(f"{json_path}: dataset file not found")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{json_path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
        raise DatasetError(f"{json_path}: not a Karpathy split file (no 'images' list)")
    report = DataReport()
    records = []
    for index, entry in enumerate(raw["images"]):
        record = _record(entry, index, report)
        if record is not None:
            records.append(record)
    if report:
        raise DatasetError(f"{json_path}: problems in the dataset file\n{report.summary()}")
    if not records:
        raise DatasetError(f"{json_path}: the dataset has no images")
    if image_root:
        root = Path(image_root)
    elif any("/" in r.path for r in records):  # COCO: <root>/train2014/..., <root>/val2014/...
        root = json_path.parent
    else:
        root = json_path.parent / "images"
    return CaptionDataset(str(raw.get("dataset", json_path.stem)), root, records)


def _record(entry: dict, index: int, report: DataReport) -> ImageRecord | None:
    name = entry.get("filename") if isinstance(entry, dict) else None
    if not name:
        report.add("entries without a filename", f"#{index}")
        return None
    split = entry.get("split")
    split = "train" if split == "restval" else split
    if split not in SPLITS:
        report.add("images with an unknown split", f"{name} ({split!r})")
        return None
    captions, raws = [], []
    for sentence in entry.get("sentences", []):
        raw_text = str(sentence.get("raw", ""))
        tokens = sentence.get("tokens") or tokenize(raw_text)
        tokens = [t.lower() for t in tokens if t.strip()]
        if tokens:
            captions.append(tuple(tokens))
            raws.append(raw_text.strip() or " ".join(tokens))
    if not captions:
        report.add("images without any non-empty caption", name)
        return None
    path = f"{entry['filepath']}/{name}" if entry.get("filepath") else name
    return ImageRecord(path, split, tuple(captions), tuple(raws))


def check_image_files(dataset: CaptionDataset, records: Sequence[ImageRecord]) -> None:
    """Fail early, with a report, when image files are missing or empty."""
    if not dataset.image_root.is_dir():
        raise DatasetError(f"{dataset.image_root}: image folder not found "
                           "(pass --images DIR)")
    report = DataReport()
    for record in records:
        path = dataset.image_path(record)
        try:
            if path.stat().st_size == 0:
                report.add("empty image files", record.path)
        except FileNotFoundError:
            report.add("missing image files", record.path)
        except OSError as exc:
            report.add("unreadable image files", f"{record.path} ({exc.strerror})")
    if report:
        raise DatasetError(f"{dataset.image_root}: image files are missing or unusable\n"
                           f"{report.summary()}")
