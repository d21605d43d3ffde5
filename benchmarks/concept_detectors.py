"""How well a model's concepts say what a photo holds: precision and recall of every concept
on Flickr8k val and on COCO dev's odd-id half (the even half trained the detectors), from the
captions (a photo holds a word when one of its captions uses it), and the person detector the
way a caption needs it: on photos that at least 3 of 5 captions say hold a person against
photos none of whose captions does.

    python -m benchmarks.concept_detectors --checkpoint soft \
        --flickr8k ../shared/data/flickr8k/dataset_flickr8k.json \
        --coco-dev ../shared/data/coco_dev/dataset_coco_dev.json --cache-dir cache \
        --out results/concepts/detectors.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from captioner import load_checkpoint
from captioner.build import load_decoder
from captioner.inference import resolve_checkpoint
from training.concepts import PERSON, coco_half, labels, report
from training.data import load_karpathy
from training.features import ensure_cache
from training.objects import PEOPLE_PRESENT_REFERENCES, PERSON_WORDS

from .common import machine

RECALL = 0.85  # the person detector's operating point for the false-alarm rate


def person_summary(probs: torch.Tensor, captions) -> dict:
    """Ranking quality (a person photo above a no-person one) and false alarms at RECALL."""
    says = [sum(any(w in PERSON_WORDS for w in c) for c in photo) for photo in captions]
    present = torch.tensor([n >= PEOPLE_PRESENT_REFERENCES for n in says])
    absent = torch.tensor([n == 0 for n in says])
    if not present.any() or not absent.any():
        return {}
    threshold = float(torch.quantile(probs[present], 1 - RECALL))
    return {"photos_with_people": int(present.sum()), "photos_without": int(absent.sum()),
            "ranking": float((probs[present][:, None] > probs[absent][None, :]).float().mean()),
            "threshold_at_recall": threshold,
            "false_alarms_at_recall": float((probs[absent] >= threshold).float().mean()),
            "recall_at_0.5": float((probs[present] >= 0.5).float().mean()),
            "false_alarms_at_0.5": float((probs[absent] >= 0.5).float().mean())}


def measure(decoder, records, cache) -> tuple[torch.Tensor, list]:
    features = torch.from_numpy(np.ascontiguousarray(
        cache.features[np.array(cache.rows([r.path for r in records]))]))
    with torch.no_grad():
        probs = torch.cat([decoder.concept_reader(features[i:i + 256]).probs
                           for i in range(0, len(features), 256)])
    return probs, [r.captions for r in records]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="soft")
    parser.add_argument("--flickr8k", required=True)
    parser.add_argument("--coco-dev", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(resolve_checkpoint(args.checkpoint))
    decoder = load_decoder(checkpoint, args.checkpoint).eval()
    if decoder.concept_reader is None:
        print(f"error: {args.checkpoint} reads no concepts", file=sys.stderr)
        return 2
    config = checkpoint.config
    words = config.concepts + config.imagenet_concepts
    # A word may have a detector and an ImageNet concept both ("dog"): name them apart.
    names = list(config.concepts) + [f"{w} (ImageNet)" for w in config.imagenet_concepts]
    result = {"checkpoint": args.checkpoint, "machine": machine(), "sets": {}}
    flickr = load_karpathy(args.flickr8k)
    coco = load_karpathy(args.coco_dev)
    sets = {"flickr8k_val": (flickr.split("val"), flickr),
            "coco_dev_check": ([r for r in coco.images if coco_half(r, "check")], coco)}
    for name, (records, dataset) in sets.items():
        cache = ensure_cache(dataset, args.cache_dir, config.encoder, config.image_size)
        probs, captions = measure(decoder, records, cache)
        rows = report(probs, labels(captions, words), names)
        person = person_summary(probs[:, words.index(PERSON)], captions)
        result["sets"][name] = {"person": person, "concepts": [r.__dict__ for r in rows]}
        print(f"{name} ({len(records)} photos): person ranking {person.get('ranking', 0):.3f}, "
              f"false alarms at {RECALL:.0%} recall {person.get('false_alarms_at_recall', 0):.1%}")
        measured = [r for r in rows if r.positives >= 5]
        print(f"  {len(measured)} concepts with 5+ photos: mean AP "
              f"{np.nanmean([r.average_precision for r in measured]):.3f}; the most frequent:")
        for r in sorted(measured, key=lambda r: -r.positives)[:15]:
            print(f"    {r.word:<16} {r.positives:>4} photos  precision {r.precision:.2f}  "
                  f"recall {r.recall:.2f}  AP {r.average_precision:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
