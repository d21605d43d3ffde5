"""A tiny captioning dataset generated on the fly, in Karpathy's JSON format.

Each photo is a coloured shape on a coloured background; its captions say so. Small enough
to cache and overfit in seconds, with nothing read from outside the repo.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220),
           "yellow": (240, 220, 30)}
SHAPES = ("circle", "square")
BACKGROUNDS = {"white": (250, 250, 250), "black": (10, 10, 10)}


def make_dataset(root: Path, n_train: int = 8, n_val: int = 2, n_test: int = 2,
                 size: int = 96) -> Path:
    """Write images/ and dataset_shapes.json under root; returns the JSON path."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    combos = [(c, s, b) for b in BACKGROUNDS for s in SHAPES for c in COLOURS]
    entries, sentid = [], 0
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for imgid, split in enumerate(splits):
        # val/test repeat the training combinations, so val BLEU can rise as training fits
        colour, shape, background = combos[imgid % n_train]
        name = f"{imgid:03d}_{colour}_{shape}.png"
        image = Image.new("RGB", (size, size), BACKGROUNDS[background])
        draw = ImageDraw.Draw(image)
        box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
        image.save(images / name)
        raws = [f"A {colour} {shape} on a {background} background.",
                f"a {colour} {shape} on {background} ."]
        sentences = []
        for raw in raws:
            tokens = raw.lower().replace(".", "").split()
            sentences.append({"raw": raw, "tokens": tokens, "imgid": imgid, "sentid": sentid})
            sentid += 1
        entries.append({"filename": name, "imgid": imgid, "split": split,
                        "sentences": sentences, "sentids": [s["sentid"] for s in sentences]})
    path = root / "dataset_shapes.json"
    path.write_text(json.dumps({"images": entries, "dataset": "shapes"}))
    return path
