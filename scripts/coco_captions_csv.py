"""A COCO captions file (captions_*.json) as the `image,caption` CSV that
`python -m training.convert photos` reads: one row per caption, in annotation-id order.

    python scripts/coco_captions_csv.py ../shared/data/coco_dev/captions_dev.json > captions.csv
"""
from __future__ import annotations

import csv
import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    names = {image["id"]: image["file_name"] for image in data["images"]}
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["image", "caption"])
    for annotation in sorted(data["annotations"], key=lambda a: a["id"]):
        writer.writerow([names[annotation["image_id"]], annotation["caption"].strip()])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
