"""Lay out a few hundred Flickr8k photos as a COCO download, to rehearse the COCO recipe.

    python scripts/coco_sample.py --flickr8k ../shared/data/flickr8k --out data/coco_sample \
        [--train 240] [--val 120]

Writes <out>/train2014/COCO_train2014_<id>.jpg, <out>/val2014/COCO_val2014_<id>.jpg and
<out>/annotations/captions_{train,val}2014.json in COCO's own caption format, so that the
README's "Training on COCO" commands run unchanged on it. The photos keep Flickr8k's terms
(research use only); the sample stays out of git (data/ is ignored).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--flickr8k", required=True, help="folder with dataset_flickr8k.json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--val", type=int, default=120)
    args = parser.parse_args()
    source = Path(args.flickr8k)
    entries = json.loads((source / "dataset_flickr8k.json").read_text())["images"]
    out = Path(args.out)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    picks = {"train2014": entries[:args.train], "val2014": entries[args.train:args.train + args.val]}
    next_id = 1
    for folder, chosen in picks.items():
        (out / folder).mkdir(exist_ok=True)
        images, annotations = [], []
        for entry in chosen:
            image_id = 100_000 + next_id
            name = f"COCO_{folder}_{image_id:012d}.jpg"
            shutil.copyfile(source / "images" / entry["filename"], out / folder / name)
            images.append({"id": image_id, "file_name": name})
            for sentence in entry["sentences"]:
                annotations.append({"id": len(annotations) + 1,
                                    "image_id": image_id, "caption": sentence["raw"]})
            next_id += 1
        (out / "annotations" / f"captions_{folder}.json").write_text(
            json.dumps({"images": images, "annotations": annotations}))
        print(f"{out / folder}: {len(images)} images, {len(annotations)} captions")


if __name__ == "__main__":
    main()
