"""Score a checkpoint on a dataset split with the standard caption metrics.

    python -m training.evaluate --checkpoint runs/soft/best.pt \
        --data ../shared/data/flickr8k --split test --beam 3 --out results/soft_test_b3.json

BLEU-1..4, METEOR, ROUGE-L and CIDEr from pycocoevalcap (METEOR needs Java; without it the
rest is computed and a note printed). SPICE is not computed: it needs downloads. Object
measures (training/objects.py): main object named, CHAIR-s and CHAIR-i, people invented,
anything invented, and people named where present.

    python -m training.evaluate --rescore results/x.json --out results/x.json

scores a result file's captions again: a GPU machine without Java captions, this one scores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from captioner.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from captioner.options import DEFAULT_OPTIONS, DecodeOptions
from captioner.files import atomic_write_text
from captioner.flags import add_option_flags, flag_message, options_from_args, positive_int
from captioner.images import ImageError
from captioner.inference import Captioner, resolve_checkpoint
from captioner.vocab import FUNCTION_WORDS

from .captions import caption_records
from .commands import prog
from .data import CaptionDataset, DatasetError, load_karpathy
from .features import (FeatureCache, FeaturesOf, cache_folder, cache_key, cached_features,
                       encoded_features, ensure_cache, open_cache)
from .metrics import score_captions
from .objects import load_instances, object_measures

METRIC_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def split_features(dataset: CaptionDataset, split: str, cache_dir: str, encoder: str,
                   image_size: int) -> FeatureCache:
    """The whole dataset's cache when it exists, else a cache of just this split."""
    paths = [r.path for r in dataset.images]
    folder = cache_folder(cache_dir, dataset, encoder, image_size)
    full = open_cache(folder, cache_key(encoder, image_size, paths))
    if full is not None:
        return full
    subset = CaptionDataset(f"{dataset.name}-{split}", dataset.image_root, dataset.split(split))
    return ensure_cache(subset, cache_dir, encoder, image_size)


def checkpoint_features(checkpoint: Checkpoint, captioner: Captioner, dataset: CaptionDataset,
                        split: str, cache_dir: str) -> FeaturesOf:
    """The grids of the checkpoint's own encoder: from the pretrained encoder's cache, or from
    the photos when it carries encoder weights (a fine-tuned encoder's grids differ)."""
    if checkpoint.encoder is not None:
        return encoded_features(captioner.encoder, captioner.preprocessing, dataset.image_root)
    return cached_features(split_features(dataset, split, cache_dir, checkpoint.config.encoder,
                                          checkpoint.config.image_size))


def evaluate(captioner: Captioner, dataset: CaptionDataset, split: str, features_of: FeaturesOf,
             options: DecodeOptions = DEFAULT_OPTIONS, batch_size: int = 100,
             instances: dict[str, set[str]] | None = None) -> dict:
    """Caption a split and score it: caption metrics, diversity, and object measures (main
    object named, CHAIR-s, CHAIR-i, people invented, anything invented, people named where
    present; with `instances`, image path -> COCO categories annotated in the photo, an object
    also counts as there when annotated)."""
    records = dataset.split(split)
    if not records:
        raise DatasetError(f"the dataset has no {split!r} images")
    started = time.perf_counter()
    predictions = caption_records(captioner.decoding, records, features_of, options, batch_size,
                                  progress=f"captioning {split}")
    decode_seconds = time.perf_counter() - started
    references = {r.path: list(r.raw) for r in records}
    scores = score_captions(predictions, references)
    captions = [{"image": r.path, "caption": predictions[r.path], "references": list(r.raw)}
                for r in records]
    objects = object_measures(predictions, references, instances)
    return {"metrics": scores.as_dict(), "diversity": diversity(list(predictions.values())),
            "objects": objects.as_dict(),
            # the temperature it decoded with: the caller's, else the model's own
            "decoding": {**options.to_dict(), "attention_temperature": (
                options.attention_temperature or captioner.config.attention_temperature)},
            "notes": list(scores.notes), "split": split,
            "beam": options.beam_size, "length_penalty": options.length_penalty,
            "block_repeats": options.block_repeats,
            "repeat_ngram": options.repeat_ngram if options.block_repeats else 0,
            "repeat_penalty": options.repeat_penalty if options.block_repeats else 0.0,
            "images": len(records), "decode_seconds": round(decode_seconds, 2),
            "captions": captions}


def photo_instances(path: str, dataset: CaptionDataset) -> dict[str, set[str]]:
    """Image path -> annotated COCO categories, joined by file name (COCO ids name the files)."""
    by_name = load_instances(path, key="file_name")
    return {r.path: by_name[Path(r.path).name] for r in dataset.images
            if Path(r.path).name in by_name}


def rescore(result: dict) -> dict:
    """The result with its metrics computed again from its own captions and references, and
    its object measures too unless they used instance annotations (the file does not hold them)."""
    try:
        predictions = {c["image"]: c["caption"] for c in result["captions"]}
        references = {c["image"]: list(c["references"]) for c in result["captions"]}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an evaluate result file (captions: {exc})") from None
    scores = score_captions(predictions, references)
    rescored = {**result, "metrics": scores.as_dict(), "notes": list(scores.notes),
                "diversity": diversity(list(predictions.values()))}
    objects = result.get("objects", {})
    if not objects.get("with_instances"):
        rescored["objects"] = object_measures(
            predictions, references, count_people=objects.get("count_people", False)).as_dict()
    return rescored


def diversity(captions: list[str]) -> dict[str, float]:
    """What a reader notices beyond the scores: captions that repeat themselves, how many
    different words the model uses, how many photos get the very same caption."""
    words = [caption.split() for caption in captions]
    loops = sum(len(set(t)) < len(t) for t in (list(zip(w, w[1:], w[2:])) for w in words))
    content = [[word for word in w if word not in FUNCTION_WORDS] for w in words]
    return {"captions_repeating_a_trigram": loops,
            # "a man in a red shirt and a black shirt": no phrase twice, but a word a reader sees
            "captions_repeating_a_content_word": sum(len(set(c)) < len(c) for c in content),
            "distinct_words": len({word for w in words for word in w}),
            "distinct_captions": round(len(set(captions)) / max(1, len(captions)), 4),
            "mean_words": round(sum(map(len, words)) / max(1, len(words)), 2)}


def print_table(result: dict) -> None:
    metrics = result["metrics"]
    print(f"{result['checkpoint']}  split={result['split']}  beam={result['beam']}  "
          f"images={result['images']}")
    print("  ".join(f"{k:>7}" for k in METRIC_KEYS))
    print("  ".join(f"{'n/a':>7}" if metrics[k] is None else f"{100 * metrics[k]:7.2f}"
                    for k in METRIC_KEYS))
    print("  ".join(f"{k}={v}" for k, v in result["diversity"].items()))
    if "objects" in result:
        objects = result["objects"]
        print(f"main object named {objects['main_object_named']:.3f} "
              f"(of {objects['photos_with_main_object']} photos)  "
              f"CHAIR-s {objects['chair_s']:.3f}  CHAIR-i {objects['chair_i']:.3f}")
        if "people_invented" in objects:  # result files written before these measures lack them
            print(f"people invented {objects['people_invented']:.3f}  "
                  f"anything invented {objects['anything_invented']:.3f}  "
                  f"people named where present {objects['people_named_where_present']:.3f} "
                  f"(of {objects['photos_with_people']} photos)")
    for note in result["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("evaluate"),
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint file, or a shipped model's name "
                        "(default: the shipped soft model)")
    parser.add_argument("--data", help="dataset JSON, or a folder holding one (required "
                        "unless --rescore)")
    parser.add_argument("--rescore", help="a result JSON written by --out: score its "
                        "captions again")
    parser.add_argument("--images", help="image folder (default: next to the JSON)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_option_flags(parser, DecodeOptions, title="decoding")
    parser.add_argument("--instances", help="COCO instance annotations (instances_*.json) of "
                        "the photos: CHAIR then also counts an annotated object as there")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rescore:
        try:
            result = rescore(json.loads(open(args.rescore, encoding="utf-8").read()))
        except (OSError, ValueError) as exc:
            print(f"error: {args.rescore}: {exc}", file=sys.stderr)
            return 2
        print_table(result)
        if args.out:
            atomic_write_text(args.out, json.dumps(result, indent=1))
        return 0
    if not args.data:
        parser.error("--data is required (unless --rescore)")
    try:
        path = resolve_checkpoint(args.checkpoint)
        checkpoint = load_checkpoint(path)
        captioner = Captioner.from_parts(checkpoint, name=str(path))
        options = options_from_args(args, DecodeOptions)
        captioner.decoding.check(options)  # before any photo: what this model cannot honour
        dataset = load_karpathy(args.data, args.images)
        features_of = checkpoint_features(checkpoint, captioner, dataset, args.split,
                                          args.cache_dir)
        instances = photo_instances(args.instances, dataset) if args.instances else None
        result = evaluate(captioner, dataset, args.split, features_of, options,
                          instances=instances)
    except (CheckpointError, DatasetError, ImageError, ValueError, OSError, KeyError) as exc:
        print(f"error: {flag_message(str(exc), DecodeOptions)}", file=sys.stderr)
        return 2
    result = {"checkpoint": args.checkpoint or str(path), **result}
    print_table(result)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
