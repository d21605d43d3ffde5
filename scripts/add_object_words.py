"""Give a captioner the object words its tagger can name but its vocabulary lacks.

    python -m scripts.add_object_words captioner/weights/soft_flickr8k.pt OUT.pt

The tagger (captioner.grounding) maps ImageNet classes to caption words; 18 of those words
(zebra, banana, broccoli, sink, oven, ...) never occur in Flickr8k's captions, so the model
cannot write them even when a tag asks for them. Each joins the vocabulary (old ids and
weights unchanged, training.vocab_growth) with the rows of its nearest word in WordNet that the
model knows ("zebra" from "horse", "broccoli" from "carrot"), DCC/NOC-style, and an output bias
BIAS_OFFSET lower than that word's: it is written where a tag asks for it or the photo and the
language model both support it, not in place of the word it borrowed from. The evidence floor
(DecodeOptions.evidence_floor) also bars it from photos where the classifier does not see it.
"""
from __future__ import annotations

import argparse
import sys

import torch

from captioner.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from captioner.object_words import object_words
from training.vocab_growth import grow_vocabulary

BIAS_OFFSET = -2.0  # nats below the borrowed word's bias


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--bias-offset", type=float, default=BIAS_OFFSET)
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = object_words()
    vocab = checkpoint.vocab.stoi
    new = sorted({c.word for c in table.classes.values()
                  if c.word not in vocab and " " not in c.word})
    like = {w: next((o for o in table.similar.get(w, ()) if o in vocab), None) for w in new}
    like = {w: o for w, o in like.items() if o is not None}
    grown = grow_vocabulary(checkpoint, new, like)
    bias = grown.decoder["out.bias"]
    rows = torch.tensor([grown.vocab.stoi[w] for w in like])
    bias[rows] = bias[rows] + args.bias_offset
    grown.metadata["object_words"] = {"added": new, "like": like, "bias_offset": args.bias_offset}
    save_checkpoint(grown, args.out, half=True)
    for word in new:
        print(f"{word:>10} <- {like.get(word, '(mean of all words)')}")
    print(f"{len(checkpoint.vocab)} -> {len(grown.vocab)} words; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
