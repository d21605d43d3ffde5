"""When is an ungrounded caption a guess? The mean word probability of each caption (captioner
alone: no tags, no fusion) on the Flickr8k val split, the photos it knows, and on the COCO dev
photos, which are unlike them; captioner.inference.GUESS_WORD_PROBABILITY is chosen from it.

    python -m benchmarks.guess_threshold --coco ../shared/data/coco_dev \
        --flickr ../shared/data/flickr8k/dataset_flickr8k.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from captioner import Captioner, load_checkpoint
from captioner.options import DEFAULT_OPTIONS
from captioner.inference import GUESS_WORD_PROBABILITY, default_checkpoint
from training.data import load_karpathy
from training.evaluate import checkpoint_features


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco", required=True)
    parser.add_argument("--flickr", required=True)
    parser.add_argument("--checkpoint", default=str(default_checkpoint()))
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    captioner = Captioner.from_parts(checkpoint, name=args.checkpoint)
    alone = DEFAULT_OPTIONS.replace(grounding=False, fusion_weight=0.0)
    for name, path, split in (("Flickr8k val", args.flickr, "val"),
                              ("COCO dev", Path(args.coco) / "dataset_coco_dev.json", "test")):
        dataset = load_karpathy(path)
        records = dataset.split(split)
        features = checkpoint_features(checkpoint, captioner, dataset, split, args.cache_dir)
        means = []
        for start in range(0, len(records), 100):
            grids = features(records[start:start + 100])
            for caption in captioner.caption_features(grids, (7, 7), alone):
                if caption.word_probs:
                    means.append(float(np.mean(caption.word_probs)))
        means = np.array(means)
        print(f"{name:>13}: mean word probability percentiles 10/25/50/75/90 = "
              + " / ".join(f"{v:.2f}" for v in np.percentile(means, [10, 25, 50, 75, 90]))
              + f"; below {GUESS_WORD_PROBABILITY}: {100 * (means < GUESS_WORD_PROBABILITY).mean():.0f}%")


if __name__ == "__main__":
    main()
