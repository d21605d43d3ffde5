"""Choose the grounding settings: each setting's caption scores and object measures on the COCO
dev photos and the Flickr8k val split, one row per setting.

    python -m benchmarks.grounding_sweep --coco ../shared/data/coco_dev \
        --flickr ../shared/data/flickr8k/dataset_flickr8k.json --out results/grounding_sweep.json

Settings: every combination of --tag-thresholds x --max-tags x --veto-thresholds, plus a row
without grounding. Scores are on dev/val splits only: the test split is scored once, later.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from captioner import Captioner, load_checkpoint
from captioner.decoding import DEFAULT_OPTIONS
from captioner.inference import default_checkpoint
from training.data import load_karpathy
from training.evaluate import checkpoint_features, evaluate, photo_instances

SHOWN = ("BLEU-4", "METEOR", "CIDEr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco", required=True, help="folder of the COCO dev set")
    parser.add_argument("--flickr", required=True, help="Flickr8k dataset JSON")
    parser.add_argument("--checkpoint", default=str(default_checkpoint()))
    parser.add_argument("--tag-thresholds", default="0.2,0.3,0.4")
    parser.add_argument("--max-tags", default="1,2")
    parser.add_argument("--veto-thresholds", default="0.8")
    parser.add_argument("--evidence-floors", default="0")
    parser.add_argument("--fusion-weights", default="0")
    parser.add_argument("--no-baseline", action="store_true", help="skip the ungrounded row")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    captioner = Captioner.from_parts(checkpoint, name=args.checkpoint)
    coco_dir = Path(args.coco)
    coco = load_karpathy(coco_dir / "dataset_coco_dev.json")
    flickr = load_karpathy(args.flickr)
    sets = [("coco_dev", coco, "test", photo_instances(str(coco_dir / "instances_dev.json"), coco)),
            ("flickr8k_val", flickr, "val", None)]
    features = {name: checkpoint_features(checkpoint, captioner, data, split, args.cache_dir)
                for name, data, split, _ in sets}
    settings = [] if args.no_baseline else [DEFAULT_OPTIONS.replace(grounding=False)]
    settings += [DEFAULT_OPTIONS.replace(tag_threshold=t, max_tags=m, veto_threshold=v,
                                         evidence_floor=f, fusion_weight=w)
                 for t, m, v, f, w in itertools.product(
                     map(float, args.tag_thresholds.split(",")),
                     map(int, args.max_tags.split(",")),
                     map(float, args.veto_thresholds.split(",")),
                     map(float, args.evidence_floors.split(",")),
                     map(float, args.fusion_weights.split(",")))]
    rows = []
    for options in settings:
        row = {"grounding": options.grounding, "tag_threshold": options.tag_threshold,
               "max_tags": options.max_tags, "veto_threshold": options.veto_threshold,
               "evidence_floor": options.evidence_floor, "fusion_weight": options.fusion_weight}
        for name, data, split, instances in sets:
            result = evaluate(captioner, data, split, features[name], options,
                              instances=instances)
            row[name] = {**{k: result["metrics"][k] for k in SHOWN},
                         **{k: result["objects"][k] for k in
                            ("main_object_named", "chair_s", "chair_i")},
                         "distinct_captions": result["diversity"]["distinct_captions"],
                         "loops": result["diversity"]["captions_repeating_a_trigram"]}
        rows.append(row)
        label = (f"tags>={options.tag_threshold:g} max {options.max_tags} "
                 f"veto>={options.veto_threshold:g} floor {options.evidence_floor:g} "
                 f"fusion {options.fusion_weight:g}"
                 if options.grounding else "no grounding")
        print(label + "".join(
            f"  | {name}: " + " ".join(f"{k} {100 * row[name][k]:.1f}" for k in
                                     (*SHOWN, "main_object_named", "chair_s"))
            for name, *_ in sets), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
