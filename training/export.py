"""Turn a training checkpoint into a shipped model: no optimizer state, float16 weights, and
of a fine-tuned encoder only the tensors that fine-tuning changed (the packaged pretrained
weights fill in the rest when the model is loaded). --attention-temperature and
--hard-inference set how the file decodes by default (its config: the app, the CLI and the
Python API read them), and --quantize makes it decode with int8 products on a CPU (the weights
in the file stay as they are); an exported file can be exported again to change them. --image-size
runs the model on another input size (448: a 14x14 grid for Lite0); the attention has no
weight tied to the grid's size, but the captions are only as good as training on it made them.

    python -m training.export --checkpoint runs/soft/best.pt --out captioner/weights/soft_flickr8k.pt
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from captioner.build import load_decoder
from captioner.concepts import HEAD_KEYS
from captioner.checkpoint import (Checkpoint, CheckpointError, load_checkpoint,
                                  save_checkpoint)
from captioner.config import HARD_INFERENCE_KINDS
from captioner.encoder import changed_tensors, encoder_spec
from captioner.inference import Captioner, resolve_checkpoint

from .commands import prog


def shipped(checkpoint: Checkpoint) -> Checkpoint:
    """The model as a shipped file holds it (a copy; save it with half=True for float16): no
    training state; of a fine-tuned encoder only the tensors that fine-tuning changed (the
    rest comes from the encoder package at load time, as for any other model); without an
    encoder, no copy of the encoder's ImageNet head (loading fills the concept reader's in).
    What training.export writes, and every training run's model.pt."""
    checkpoint = dataclasses.replace(checkpoint, training=None)
    if checkpoint.encoder is not None and checkpoint.encoder_base is None \
            and not encoder_spec(checkpoint.config.encoder).needs_weights_file:
        checkpoint.encoder = changed_tensors(checkpoint.config.encoder, checkpoint.encoder)
        checkpoint.encoder_base = "pretrained"
    if checkpoint.encoder is None:
        checkpoint.decoder = {k: v for k, v in checkpoint.decoder.items() if k not in HEAD_KEYS}
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("export"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint file, or a shipped model's name")
    parser.add_argument("--out", required=True)
    parser.add_argument("--float32", action="store_true", help="keep float32 weights")
    parser.add_argument("--attention-temperature", type=float,
                        help="the model's own attention temperature when decoding (default: "
                             "the checkpoint's)")
    parser.add_argument("--hard-inference", choices=HARD_INFERENCE_KINDS,
                        help="how a hard-attention model attends when decoding (default: the "
                             "checkpoint's)")
    parser.add_argument("--image-size", type=int,
                        help="the encoder's input side (default: the checkpoint's)")
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction,
                        help="decode with int8 products (the decoder's and the language "
                             "model's per-step layers, on a CPU); --no-quantize: in floating "
                             "point (default: the checkpoint's)")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(resolve_checkpoint(args.checkpoint))
        changes = {name: value for name, value in (
            ("attention_temperature", args.attention_temperature),
            ("hard_inference", args.hard_inference),
            ("image_size", args.image_size),
            ("quantized", args.quantize)) if value is not None}
        try:
            checkpoint.config = dataclasses.replace(checkpoint.config, **changes)
        except ValueError as exc:
            parser.error(str(exc))
        if args.image_size is not None:  # the photo is squashed to the new side
            checkpoint.preprocessing = dataclasses.replace(checkpoint.preprocessing,
                                                           image_size=args.image_size)
        full, base = checkpoint.encoder, checkpoint.encoder_base
        checkpoint = shipped(checkpoint)
        if full is not None and base is None and checkpoint.encoder_base == "pretrained":
            print(f"encoder: {len(checkpoint.encoder)} of {len(full)} tensors differ from the "
                  "pretrained weights and are kept")
        # Refuse to ship weights that do not load.
        if checkpoint.encoder is not None:
            Captioner.from_parts(checkpoint, name=args.checkpoint)
        else:
            load_decoder(checkpoint, args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checkpoint.metadata = {**checkpoint.metadata, "exported_from": str(args.checkpoint)}
    save_checkpoint(checkpoint, args.out, half=not args.float32)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
