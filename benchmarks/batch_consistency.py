"""Does a photo's caption depend on the photos captioned with it?

Captions the first --photos photos of a Karpathy-format dataset once in one call (as the CLI and
the app's table do, up to captioner.inference.PHOTOS_PER_CALL a call) and once one at a time,
and prints how many captions differ, the largest difference of a word's probability and of a
caption's log-probability between the two where the words agree, and the same for "Explain
a caption" reading each photo's own caption again (its log-probability against the search's).

    python -m benchmarks.batch_consistency --data ../shared/data/coco_dev/dataset_coco_dev.json \\
        --checkpoint soft --photos 32
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from captioner import Captioner
from captioner.inference import resolve_checkpoint
from training.data import load_karpathy

from .common import machine


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Karpathy-format dataset JSON")
    parser.add_argument("--checkpoint", default="soft")
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.photos < 1:
        parser.error("--photos must be at least 1")
    torch.set_num_threads(args.threads)
    captioner = Captioner.from_checkpoint(resolve_checkpoint(args.checkpoint))
    dataset = load_karpathy(args.data)
    photos = [dataset.image_path(record).read_bytes() for record in dataset.images[:args.photos]]
    together = captioner.caption_encoded(captioner.encode(photos))
    each = [captioner.encode([photo]) for photo in photos]  # one photo a call
    alone = [captioner.caption_encoded(encoded)[0] for encoded in each]
    same = [(a, b) for a, b in zip(together, alone) if a.words == b.words]
    # Explain reads each photo's own caption (of one photo a call) again
    read_again = [(captioner.explain(encoded, caption.text), caption)
                  for encoded, caption in zip(each, alone) if caption.words]
    result = {
        "checkpoint": args.checkpoint, "machine": machine(), "photos": len(photos),
        "captions_differ": len(photos) - len(same),
        "max_word_prob_difference": max((abs(p - q) for a, b in same
                                         for p, q in zip(a.word_probs, b.word_probs)),
                                        default=0.0),
        "max_log_prob_difference": max((abs(a.log_prob - b.log_prob) for a, b in same),
                                       default=0.0),
        "explain_max_log_prob_difference": max(
            (abs(read.log_prob - caption.log_prob) for read, caption in read_again), default=0.0),
        "differing": [{"together": a.text, "alone": b.text}
                      for a, b in zip(together, alone) if a.words != b.words],
    }
    print(f"{args.checkpoint}: {len(photos)} photos, {result['captions_differ']} captions differ "
          f"between one call and one at a time; where the words agree, word probabilities "
          f"differ by at most {result['max_word_prob_difference']:.5f} and log-probabilities by "
          f"{result['max_log_prob_difference']:.5f}; Explain reads each photo's own caption "
          f"within {result['explain_max_log_prob_difference']:.5f} of its search")
    for pair in result["differing"]:
        print(f"  together: {pair['together']}\n  alone:    {pair['alone']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
