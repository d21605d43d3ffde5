r"""Convert raw caption downloads into Karpathy's split JSON format (what training reads).

    python -m training.convert coco --train-json annotations/captions_train2014.json \
        --val-json annotations/captions_val2014.json [--karpathy-split dataset_coco.json] \
        [--images coco] --out coco/dataset_coco.json
    python -m training.convert flickr8k --captions Flickr8k.token.txt \
        --train Flickr_8k.trainImages.txt --val Flickr_8k.devImages.txt \
        --test Flickr_8k.testImages.txt [--images flickr8k/images] \
        --out flickr8k/dataset_flickr8k.json
    python -m training.convert photos --images my_photos/images --captions captions.csv \
        [--format csv|jsonl|flickr] [--val-fraction 0.1] [--test-fraction 0.1] [--seed 123] \
        [--split-from earlier/dataset.json] --out my_photos/dataset_photos.json

Output: {"images": [{"filename", "filepath" (COCO), "imgid", "split", "sentences": [{"raw",
"tokens", "imgid", "sentid"}], "sentids", "cocoid" (COCO)}], "dataset": name}. Images are
numbered in sorted file-name order, sentences in that order; tokens = captioner.vocab.tokenize.

COCO without --karpathy-split: train2014 is "train"; val2014 is shuffled with --seed and cut
into --val-size "val", --test-size "test" and the rest "restval" (Karpathy's 5000/5000
convention, but not his exact images: pass his dataset_coco.json for those). Without
--train-json, a single captions file (--val-json) is cut that way: a small COCO-layout set
split for fine-tuning and evaluation (docs/own_photos.md).
Flickr8k: the dev list becomes "val"; images in no list, and entries that are not .jpg names
(such as the known bogus "2258277193_586949ec62.jpg.1"), are left out and reported.
Your photos: captions as CSV with an `image,caption` header, JSON lines ({"image", "caption"}
or {"image", "captions": [...]}) or Flickr8k's token layout (see training/caption_files.py);
photos are shuffled with --seed and cut into val, test and the rest train (or take their
splits from an earlier Karpathy JSON with --split-from, to keep a test set fixed). A missing or
unreadable photo, an empty caption, a malformed row or non-UTF-8 text is an error naming the
file and line; a caption repeated for the same photo is kept once and reported.

What each source needs: its own help (`coco --help`, `flickr8k --help`, `photos --help`).
After converting: the photos are read from beside the JSON (<dataset dir>/images, or for COCO
<dataset dir>/train2014/ and val2014/) or from --images DIR, to build the feature cache
(training.cache, or the first training.train); once it is cached, training.train,
training.scst and training.evaluate of a first-stage model need only the JSON.
training.finetune reads the photos at every step.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from PIL import Image

from captioner.files import atomic_write_text
from captioner.vocab import tokenize

from .caption_files import (CAPTION_FORMATS, CaptionLine, ConvertError, parse_token_line,
                            read_caption_file, read_text)
from .commands import prog
from .data import DataReport

SPLIT_ORDER = ("train", "restval", "val", "test")

COCO_NEEDS = """Needs COCO 2014's caption annotations (captions_train2014.json and
captions_val2014.json, from annotations_trainval2014.zip). Optional: Karpathy's
dataset_coco.json (--karpathy-split) for his exact splits, and the image folder holding
train2014/ and val2014/ (--images) to check that every photo is there; the photos themselves
are not read. Without --train-json, --val-json alone is cut into val, test and restval."""
FLICKR8K_NEEDS = """Needs Flickr8k_text's caption file (Flickr8k.token.txt) and its three
split lists (Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, Flickr_8k.testImages.txt).
Optional: the image folder (Flickr8k_Dataset, --images) to check that every photo is there;
the photos themselves are not read."""
PHOTOS_NEEDS = """Needs the folder of your photos (--images; each named photo is opened to
check that it is an image) and a captions file naming them (--captions): CSV with an
image,caption header, JSON lines ({"image", "caption"} or {"image", "captions": [...]}) or
Flickr8k's token layout. The photos are cut into train, val and test by --val-fraction and
--test-fraction (or by --split-from)."""


@dataclass(frozen=True)
class RawImage:
    """One image as read from the raw download, before numbering and tokenization."""

    filename: str
    split: str
    captions: tuple[str, ...]
    filepath: str | None = None  # COCO: "train2014" / "val2014"
    cocoid: int | None = None


@dataclass
class Conversion:
    dataset: dict  # the Karpathy-format JSON object
    report: DataReport  # what was left out, dropped or is missing, with the first few names

    def split_counts(self) -> dict[str, int]:
        counts = Counter(image["split"] for image in self.dataset["images"])
        return {split: counts[split] for split in SPLIT_ORDER if counts[split]}

    def summary(self) -> str:
        images = self.dataset["images"]
        splits = ", ".join(f"{name} {n}" for name, n in self.split_counts().items())
        captions = sum(len(image["sentences"]) for image in images)
        lines = [f"{self.dataset['dataset']}: {len(images)} images ({splits}), "
                 f"{captions} captions"]
        lines += [f"  {line}" for line in self.report.summary().splitlines()]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# shared: numbering, tokenization, image check, atomic write
# ---------------------------------------------------------------------------------------------

def build_karpathy(name: str, images: Iterable[RawImage], report: DataReport) -> dict:
    """Number images in sorted file-name order and sentences in that order; tokenize; drop
    captions that tokenize to nothing (and images left with none), recording them in report."""
    entries: list[dict] = []
    sentid = 0
    for image in sorted(images, key=lambda im: (im.filename, im.filepath or "")):
        imgid = len(entries)
        sentences = []
        for index, caption in enumerate(image.captions):
            raw = caption.strip()
            tokens = tokenize(raw)
            if not tokens:
                report.add("captions that tokenize to nothing (dropped)",
                           f"{image.filename}#{index}")
                continue
            sentences.append({"raw": raw, "tokens": tokens, "imgid": imgid, "sentid": sentid})
            sentid += 1
        if not sentences:
            report.add("images without any usable caption (left out)", image.filename)
            continue
        entry = {"filename": image.filename}
        if image.filepath is not None:
            entry["filepath"] = image.filepath
        entry.update(imgid=imgid, split=image.split, sentences=sentences,
                     sentids=[s["sentid"] for s in sentences])
        if image.cocoid is not None:
            entry["cocoid"] = image.cocoid
        entries.append(entry)
    return {"images": entries, "dataset": name}


def check_images(dataset: dict, image_dir: str | os.PathLike, report: DataReport) -> None:
    """Record dataset images whose file is not in image_dir (COCO: image_dir/filepath/...)."""
    root = Path(image_dir)
    if not root.is_dir():
        raise ConvertError(f"{root}: image folder not found")
    for entry in dataset["images"]:
        relative = Path(entry.get("filepath") or "", entry["filename"])
        if not (root / relative).is_file():
            report.add(f"image files missing from {root}", str(relative))


def write_json(data: dict, out: str | os.PathLike) -> None:
    atomic_write_text(out, json.dumps(data))


def _read_json(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ConvertError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConvertError(f"{path}: expected a JSON object with an 'images' list")
    return data


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------

def convert_coco(train_json: str | os.PathLike | None, val_json: str | os.PathLike,
                 karpathy_split: str | os.PathLike | None = None,
                 images: str | os.PathLike | None = None, val_size: int = 5000,
                 test_size: int = 5000, seed: int = 123) -> Conversion:
    """captions_train2014.json + captions_val2014.json -> Karpathy JSON ("coco"). Without
    train_json, every image comes from val_json (cut into val, test and restval, which
    training reads as train)."""
    for path in (train_json, val_json, karpathy_split):
        if path is not None and not Path(path).is_file():
            raise ConvertError(f"{path}: file not found")
    if val_size < 0 or test_size < 0:
        raise ConvertError("--val-size and --test-size must not be negative")
    report = DataReport()
    train = {} if train_json is None else _read_coco(train_json, "train2014", report)
    val = _read_coco(val_json, "val2014", report)
    both = set(train) & set(val)
    if both:
        raise ConvertError(f"{val_json}: {len(both)} image ids also in {train_json} "
                           f"(e.g. {sorted(both)[:3]})")
    if karpathy_split is not None:
        splits = _karpathy_splits(karpathy_split, {**train, **val}, report)
    else:
        splits = {cocoid: "train" for cocoid in train}
        order = sorted(val, key=lambda cocoid: val[cocoid][0])  # by file name, then shuffled
        if len(order) < val_size + test_size:
            raise ConvertError(f"{val_json}: {len(order)} images, fewer than --val-size "
                               f"{val_size} + --test-size {test_size}")
        random.Random(seed).shuffle(order)
        for position, cocoid in enumerate(order):
            splits[cocoid] = ("val" if position < val_size else
                              "test" if position < val_size + test_size else "restval")
    raw_images = [RawImage(filename, splits[cocoid], captions, folder, cocoid)
                  for source, folder in ((train, "train2014"), (val, "val2014"))
                  for cocoid, (filename, captions) in source.items() if cocoid in splits]
    dataset = build_karpathy("coco", raw_images, report)
    if images is not None:
        check_images(dataset, images, report)
    return Conversion(dataset, report)


def _read_coco(path: str | os.PathLike, folder: str, report: DataReport
               ) -> dict[int, tuple[str, tuple[str, ...]]]:
    """cocoid -> (file name, captions in annotation-id order), for images with captions."""
    data = _read_json(path)
    annotations = data.get("annotations")
    if not isinstance(annotations, list):
        raise ConvertError(f"{path}: expected an 'annotations' list (a COCO captions file)")
    try:
        names = {int(image["id"]): str(image["file_name"]) for image in data["images"]}
        pairs = sorted((int(a["id"]), int(a["image_id"]), str(a["caption"]))
                       for a in annotations)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvertError(f"{path}: malformed image or annotation entry ({exc!r})") from None
    captions: dict[int, list[str]] = {}
    for _, cocoid, caption in pairs:
        if cocoid in names:
            captions.setdefault(cocoid, []).append(caption)
        else:
            report.add(f"{folder} captions for unknown image ids (dropped)", str(cocoid))
    for cocoid, name in names.items():
        if cocoid not in captions:
            report.add(f"{folder} images without captions (left out)", name)
    return {cocoid: (names[cocoid], tuple(caps)) for cocoid, caps in captions.items()}


def _karpathy_splits(path: str | os.PathLike, coco: dict[int, tuple[str, tuple[str, ...]]],
                     report: DataReport) -> dict[int, str]:
    """cocoid -> split from a Karpathy dataset_coco.json (matched by cocoid, else file name)."""
    by_name = {filename: cocoid for cocoid, (filename, _) in coco.items()}
    splits: dict[int, str] = {}
    for index, entry in enumerate(_read_json(path)["images"]):
        if not isinstance(entry, dict) or entry.get("split") not in SPLIT_ORDER:
            raise ConvertError(f"{path}: image #{index} has no split among {SPLIT_ORDER}")
        try:
            cocoid = int(entry["cocoid"])
        except (KeyError, TypeError, ValueError):
            cocoid = None
        if cocoid not in coco:
            cocoid = by_name.get(str(entry.get("filename")))
        if cocoid is None:
            report.add("split-file images not in the caption files (ignored)",
                       str(entry.get("filename", f"#{index}")))
            continue
        splits[cocoid] = entry["split"]
    for cocoid, (filename, _) in coco.items():
        if cocoid not in splits:
            report.add("images not in the split file (left out)", filename)
    return splits


# ---------------------------------------------------------------------------------------------
# Flickr8k
# ---------------------------------------------------------------------------------------------

def convert_flickr8k(captions: str | os.PathLike, train: str | os.PathLike,
                     val: str | os.PathLike, test: str | os.PathLike,
                     images: str | os.PathLike | None = None) -> Conversion:
    """Flickr8k.token.txt + the three official split lists -> Karpathy JSON ("flickr8k")."""
    for path in (captions, train, val, test):
        if not Path(path).is_file():
            raise ConvertError(f"{path}: file not found")
    report = DataReport()
    by_image = _read_flickr_tokens(captions, report)
    splits: dict[str, str] = {}
    for split, path in (("train", train), ("val", val), ("test", test)):
        for name in _read_list(path):
            if name in splits and splits[name] != split:
                raise ConvertError(f"{path}: {name} is also in the {splits[name]} list")
            splits[name] = split
            if name not in by_image:
                report.add("listed images without captions (left out)", name)
    for name in sorted(by_image):
        if name not in splits:
            report.add("images in no split list (left out)", name)
    raw_images = [RawImage(name, splits[name], tuple(caps[i] for i in sorted(caps)))
                  for name, caps in by_image.items() if name in splits]
    dataset = build_karpathy("flickr8k", raw_images, report)
    if images is not None:
        check_images(dataset, images, report)
    return Conversion(dataset, report)


def _read_flickr_tokens(path: str | os.PathLike, report: DataReport
                        ) -> dict[str, dict[int, str]]:
    """"name.jpg#i<TAB>caption" lines -> {name: {i: caption}}; bad lines are reported."""
    by_image: dict[str, dict[int, str]] = {}
    skipped: set[str] = set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parsed = parse_token_line(line)
        if parsed is None:
            report.add("malformed caption lines (skipped)", f"line {number}")
            continue
        name, index, caption = parsed
        if not name.lower().endswith(".jpg"):
            if name not in skipped:
                skipped.add(name)
                report.add("entries that are not .jpg image names (skipped)", name)
            continue
        captions = by_image.setdefault(name, {})
        if index in captions:
            report.add("duplicate caption ids (later one skipped)",
                       f"{name}#{index} (line {number})")
            continue
        captions[index] = caption
    return by_image


def _read_list(path: str | os.PathLike) -> list[str]:
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# your own photos
# ---------------------------------------------------------------------------------------------

# Files counted as photos when listing those the captions file leaves out.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def convert_photos(captions: str | os.PathLike, images: str | os.PathLike,
                   format: str | None = None, val_fraction: float = 0.1,
                   test_fraction: float = 0.1, seed: int = 123,
                   name: str = "photos", split_from: str | os.PathLike | None = None
                   ) -> Conversion:
    """A folder of photos + a captions file (caption_files.CAPTION_FORMATS) -> Karpathy JSON
    with a seeded split, or each photo's split from an earlier Karpathy JSON (split_from,
    matched by file name; photos it lacks are left out and reported). Every photo named must
    exist and open as an image; the same caption written twice for a photo is kept once and
    reported."""
    check_fractions(val_fraction, test_fraction)
    root = Path(images)
    if not root.is_dir():
        raise ConvertError(f"{root}: image folder not found")
    report = DataReport()
    by_image: dict[str, list[str]] = {}
    for record in read_caption_file(captions, format):
        if record.image not in by_image:
            _check_photo(root, record, captions)
            by_image[record.image] = []
        if record.caption in by_image[record.image]:
            report.add("duplicate captions (kept once)", f"{record.image} (line {record.line})")
            continue
        by_image[record.image].append(record.caption)
    if not by_image:
        raise ConvertError(f"{captions}: no captions in the file")
    for photo in sorted(p.name for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        if photo not in by_image:
            report.add("photos in the folder without captions (left out)", photo)
    if split_from is None:
        splits = seeded_split(sorted(by_image), val_fraction, test_fraction, seed)
    else:
        splits = _splits_by_filename(split_from, by_image, report)
    raw_images = [RawImage(photo, splits[photo], tuple(caps))
                  for photo, caps in by_image.items() if photo in splits]
    return Conversion(build_karpathy(name, raw_images, report), report)


def _splits_by_filename(path: str | os.PathLike, photos: Iterable[str], report: DataReport
                        ) -> dict[str, str]:
    """photo -> its split in a Karpathy JSON (any dataset's: matched by file name)."""
    photos = set(photos)
    if not Path(path).is_file():
        raise ConvertError(f"{path}: file not found")
    splits: dict[str, str] = {}
    for index, entry in enumerate(_read_json(path)["images"]):
        if not isinstance(entry, dict) or entry.get("split") not in SPLIT_ORDER:
            raise ConvertError(f"{path}: image #{index} has no split among {SPLIT_ORDER}")
        splits[str(entry.get("filename"))] = entry["split"]
    for photo in sorted(photos):
        if photo not in splits:
            report.add(f"photos not in {Path(path).name} (left out)", photo)
    return {photo: split for photo, split in splits.items() if photo in photos}


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for flag, fraction in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ConvertError(f"{flag} must be at least 0 and below 1 (got {fraction})")
    if val_fraction + test_fraction >= 1:
        raise ConvertError("--val-fraction + --test-fraction must leave images to train on")


def seeded_split(names: list[str], val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, str]:
    """name -> "val" / "test" / "train": names shuffled with seed, then cut in that order.
    A positive fraction gets at least one image, so a small set still has something to
    validate on; train must keep at least one."""
    def share(fraction: float) -> int:
        return 0 if fraction == 0 else max(1, round(len(names) * fraction))
    val, test = share(val_fraction), share(test_fraction)
    if val + test >= len(names):
        raise ConvertError(f"{len(names)} photos are too few for {val} val and {test} test "
                           "images with some left to train on; lower the fractions")
    order = sorted(names)  # the shuffle must not depend on the caption file's order
    random.Random(seed).shuffle(order)
    return {photo: "val" if position < val else "test" if position < val + test else "train"
            for position, photo in enumerate(order)}


def _check_photo(root: Path, record: CaptionLine, captions: str | os.PathLike) -> None:
    """The photo must be a file directly in root (no folders: training reads
    <images>/<filename>) that opens as an image."""
    where = f"{captions}, line {record.line}"
    if Path(record.image).name != record.image or record.image in (".", ".."):
        raise ConvertError(f"{where}: {record.image!r}: name a photo directly in the images "
                           "folder (no folders or absolute paths)")
    path = root / record.image
    if not path.is_file():
        raise ConvertError(f"{where}: photo {record.image} not found in {root}")
    try:
        with Image.open(path):  # reads the header only: cheap, and catches non-images
            pass
    except (OSError, Image.DecompressionBombError) as exc:
        raise ConvertError(f"{where}: photo {record.image} is not a readable image "
                           f"({exc})") from None


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("convert"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="source", required=True,
                                     metavar="{coco,flickr8k,photos}")
    coco = commands.add_parser("coco", allow_abbrev=False,
                               help="COCO 2014 captions (+ optional Karpathy split)",
                               description=COCO_NEEDS)
    coco.add_argument("--train-json", help="captions_train2014.json (without it, every "
                      "image comes from --val-json: val, test and the rest restval)")
    coco.add_argument("--val-json", required=True, help="captions_val2014.json")
    coco.add_argument("--karpathy-split", help="a dataset_coco.json giving each image's split")
    coco.add_argument("--val-size", type=int, default=5000, help="without --karpathy-split")
    coco.add_argument("--test-size", type=int, default=5000, help="without --karpathy-split")
    coco.add_argument("--seed", type=int, default=123, help="shuffles val2014 for the split")
    coco.add_argument("--images", help="check files exist: folder with train2014/, val2014/")
    coco.add_argument("--out", required=True, help="the Karpathy-format JSON to write")
    flickr = commands.add_parser("flickr8k", allow_abbrev=False,
                                 help="Flickr8k token file + official split lists",
                                 description=FLICKR8K_NEEDS)
    flickr.add_argument("--captions", required=True, help="Flickr8k.token.txt")
    flickr.add_argument("--train", required=True, help="Flickr_8k.trainImages.txt")
    flickr.add_argument("--val", required=True, help="Flickr_8k.devImages.txt")
    flickr.add_argument("--test", required=True, help="Flickr_8k.testImages.txt")
    flickr.add_argument("--images", help="check that every image file exists in this folder")
    flickr.add_argument("--out", required=True, help="the Karpathy-format JSON to write")
    photos = commands.add_parser("photos", allow_abbrev=False,
                                 help="a folder of your photos + a captions file",
                                 description=PHOTOS_NEEDS)
    photos.add_argument("--images", required=True, help="the folder holding the photos")
    photos.add_argument("--captions", required=True,
                        help="CSV (image,caption), JSON lines or a Flickr8k-style token file")
    photos.add_argument("--format", choices=list(CAPTION_FORMATS),
                        help="the captions file's layout (default: from its suffix)")
    photos.add_argument("--val-fraction", type=float, default=0.1, help="photos for val")
    photos.add_argument("--test-fraction", type=float, default=0.1, help="photos for test")
    photos.add_argument("--seed", type=int, default=123, help="shuffles photos for the split")
    photos.add_argument("--split-from", metavar="DATASET_JSON",
                        help="take each photo's split from this Karpathy JSON (by file name) "
                        "instead of the seeded fractions")
    photos.add_argument("--name", default="photos", help="the dataset's name in the JSON")
    photos.add_argument("--out", required=True, help="the Karpathy-format JSON to write "
                        "(beside a folder named images, training finds the photos without "
                        "--images)")
    args = parser.parse_args(argv)
    try:
        if args.source == "coco":
            inputs = [args.train_json, args.val_json, args.karpathy_split]
            _check_out(args.out, inputs)
            conversion = convert_coco(args.train_json, args.val_json, args.karpathy_split,
                                      args.images, args.val_size, args.test_size, args.seed)
        elif args.source == "photos":
            _check_out(args.out, [args.captions, args.split_from])
            conversion = convert_photos(args.captions, args.images, args.format,
                                        args.val_fraction, args.test_fraction, args.seed,
                                        args.name, args.split_from)
        else:
            inputs = [args.captions, args.train, args.val, args.test]
            _check_out(args.out, inputs)
            conversion = convert_flickr8k(args.captions, args.train, args.val, args.test,
                                          args.images)
        if not conversion.dataset["images"]:
            raise ConvertError("no images left to write")
        write_json(conversion.dataset, args.out)
    except (ConvertError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{conversion.summary()}\nwrote {args.out}", file=sys.stderr)
    return 0


def _check_out(out: str, inputs: list[str | None]) -> None:
    target = Path(out).resolve()
    for path in inputs:
        if path is not None and Path(path).resolve() == target:
            raise ConvertError(f"{out}: --out would overwrite an input file")


if __name__ == "__main__":
    sys.exit(main())
