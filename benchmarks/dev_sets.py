"""What the grounding benchmarks share: the COCO dev photos and the Flickr8k val split they
choose settings on, and the captioner they measure."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from captioner import Captioner, load_checkpoint
from captioner.checkpoint import Checkpoint
from captioner.inference import default_checkpoint

COCO_DEV_JSON = "dataset_coco_dev.json"
COCO_DEV_INSTANCES = "instances_dev.json"


def add_dev_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coco", required=True, help="folder of the COCO dev set")
    parser.add_argument("--flickr", required=True, help="Flickr8k dataset JSON")
    parser.add_argument("--checkpoint", default=str(default_checkpoint()))
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=2)


def load_captioner(args: argparse.Namespace) -> tuple[Checkpoint, Captioner]:
    """--checkpoint's file and its captioner, torch on --threads threads."""
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    return checkpoint, Captioner.from_parts(checkpoint, name=args.checkpoint)
