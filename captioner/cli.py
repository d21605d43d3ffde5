"""Command line: python -m captioner caption PHOTO... [--checkpoint PATH] [--beam N] [--json]."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .decoding import BEAM_SIZE, BLOCK_REPEATS, LENGTH_PENALTY, MAX_LENGTH
from .images import ImageError, load_image
from .inference import DEFAULT_CHECKPOINTS, MAX_CAPTION_LENGTH, Captioner, default_checkpoint
from .overlay import map_style, overlay_grid

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="captioner",
                                     description="Caption photos and show where the model looked.")
    commands = parser.add_subparsers(dest="command", required=True)
    cap = commands.add_parser("caption", help="caption one or more photos")
    cap.add_argument("photos", nargs="+", help="image files (JPEG, PNG, WebP, BMP, GIF, ...)")
    source = cap.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="checkpoint file (default: the shipped model)")
    source.add_argument("--model", choices=sorted(DEFAULT_CHECKPOINTS),
                        help="which shipped model to use (default: soft)")
    cap.add_argument("--beam", type=int, default=BEAM_SIZE,
                     help=f"beam size (1 = greedy; default {BEAM_SIZE})")
    cap.add_argument("--n-best", type=int, default=1, help="hypotheses to print per photo")
    cap.add_argument("--max-length", type=int, default=MAX_LENGTH,
                     help="maximum words per caption")
    cap.add_argument("--length-penalty", type=float, default=LENGTH_PENALTY,
                     help="rank hypotheses by log-prob / (words + 1)**P "
                     f"(default {LENGTH_PENALTY:g})")
    cap.add_argument("--block-repeats", action=argparse.BooleanOptionalAction,
                     default=BLOCK_REPEATS, help="never repeat a pair of words within a "
                     "caption; discourage saying a content word twice")
    cap.add_argument("--json", action="store_true", help="print JSON with words, scores and maps")
    cap.add_argument("--overlay-dir", type=Path, help="write PHOTO.attention.png grids here")
    cap.add_argument("--no-smooth", action="store_true", help="blocky overlays (no smoothing)")
    cap.add_argument("--threads", type=int, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.beam <= 20:
        return _fail("--beam must be between 1 and 20")
    if not 1 <= args.n_best <= args.beam:
        return _fail("--n-best must be between 1 and --beam")
    if not 1 <= args.max_length <= MAX_CAPTION_LENGTH:
        return _fail(f"--max-length must be between 1 and {MAX_CAPTION_LENGTH}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint(args.model or "soft")
    try:
        captioner = Captioner.from_checkpoint(checkpoint)
    except (CheckpointError, ValueError, OSError) as exc:
        return _fail(str(exc))
    if args.overlay_dir:
        try:
            args.overlay_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _fail(f"{args.overlay_dir}: cannot create overlay directory ({exc.strerror})")
    style = map_style(captioner.config)
    failed, results = 0, []
    for name in args.photos:
        try:
            photo = load_image(name)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        caption = captioner.caption(photo, beam_size=args.beam, n_best=args.n_best,
                                    max_length=args.max_length,
                                    length_penalty=args.length_penalty,
                                    block_repeats=args.block_repeats)[0]
        if args.overlay_dir:
            sheet = overlay_grid(photo, caption.words, caption.alphas, **style,
                                 smooth=not args.no_smooth)
            sheet.save(args.overlay_dir / f"{Path(name).name}.attention.png")
        if args.json:
            results.append({"image": name, **caption.to_dict()})
        else:
            print(f"{name}\t{caption.text}")
            for alt in caption.alternatives[1:]:
                print(f"  {alt.score:8.3f}  {alt.text}")
    if args.json:
        json.dump(results, sys.stdout)
        sys.stdout.write("\n")
    return EXIT_BAD_INPUT if failed else 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
