"""Which words may be tags: each tag word's precision (the share of its tags that a reference
caption of the photo names) on the COCO dev photos and the Flickr8k val split.

    python -m benchmarks.tag_precision --coco ../shared/data/coco_dev \
        --flickr ../shared/data/flickr8k/dataset_flickr8k.json --out results/tag_precision.json

A word tagged at least --min-tags times with precision below --min-precision is listed as
unreliable (captioner.grounding.UNRELIABLE_TAGS is that list). All words are considered, with
no list applied, at confidence --threshold.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from captioner.imagenet import imagenet_names
from training.data import load_karpathy
from training.evaluate import checkpoint_features
from training.objects import caption_objects

from .dev_sets import COCO_DEV_JSON, add_dev_set_arguments, load_captioner


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    add_dev_set_arguments(parser)
    parser.add_argument("--threshold", type=float, default=0.2)
    parser.add_argument("--min-tags", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=1 / 3)
    args = parser.parse_args()
    checkpoint, captioner = load_captioner(args)
    tagger = captioner.decoding.tagger
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for path, split in ((Path(args.coco) / COCO_DEV_JSON, "test"), (args.flickr, "val")):
        dataset = load_karpathy(path)
        records = dataset.split(split)
        features = checkpoint_features(checkpoint, captioner, dataset, split, args.cache_dir)
        grids = features(records).float()
        with torch.inference_mode():
            evidence = tagger.evidence(captioner.encoder.imagenet_logits(grids),
                                       captioner.encoder.imagenet_cell_logits(grids))
        tags = tagger.tags(evidence, args.threshold, len(tagger.words), imagenet_names(),
                           unreliable=())
        for record, photo_tags in zip(records, tags):
            references = [" ".join(c) for c in record.captions]
            named = set().union(*map(caption_objects, references))
            words = set(" ".join(references).split())
            for tag in photo_tags:
                right = (tag.category in named if tag.category
                         else bool(set(tagger.forms_of(tag.word)) & words))
                outcomes[tag.word].append(right)
    rows = sorted(({"word": w, "tags": len(v), "precision": round(sum(v) / len(v), 3)}
                   for w, v in outcomes.items()), key=lambda r: (-r["tags"], r["word"]))
    unreliable = sorted(r["word"] for r in rows
                        if r["tags"] >= args.min_tags and r["precision"] < args.min_precision)
    for row in rows:
        print(f"{row['word']:>12}  {row['tags']:4d} tags  precision {row['precision']:.2f}")
    print(f"unreliable (>= {args.min_tags} tags, precision < {args.min_precision:.2f}): "
          + ", ".join(unreliable))
    if args.out:
        args.out.write_text(json.dumps({"threshold": args.threshold, "words": rows,
                                        "unreliable": unreliable}, indent=1))


if __name__ == "__main__":
    main()
