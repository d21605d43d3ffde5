"""Command line: python -m captioner caption PHOTO... [--checkpoint PATH] [--beam N] [--json]."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .options import DecodeOptions
from .flags import add_option_flags, flag_message, options_from_args, positive_int
from .images import ImageError, load_image
from .inference import DEFAULT_CHECKPOINTS, PHOTOS_PER_CALL, Captioner, in_chunks
from .overlay import map_style, overlay_grid

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="captioner",
                                     description="Caption photos and show where the model looked.")
    commands = parser.add_subparsers(dest="command", required=True)
    cap = commands.add_parser("caption", allow_abbrev=False, help="caption one or more photos")
    cap.add_argument("photos", nargs="+", help="image files (JPEG, PNG, WebP, BMP, GIF, ...)")
    source = cap.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="checkpoint file, or a shipped model's name "
                        "(default: the shipped soft model)")
    source.add_argument("--model", choices=sorted(DEFAULT_CHECKPOINTS),
                        help="which shipped model to use (default: soft)")
    add_option_flags(cap, DecodeOptions, title="decoding")
    cap.add_argument("--json", action="store_true",
                     help="print JSON with words, scores and maps; a photo that cannot be read "
                          "is an entry with its \"error\"")
    cap.add_argument("--overlay-dir", type=Path, help="write PHOTO.attention.png grids here")
    cap.add_argument("--no-smooth", action="store_true", help="blocky overlays (no smoothing)")
    cap.add_argument("--threads", type=positive_int, help="torch CPU threads (at least 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = options_from_args(args, DecodeOptions)
    except ValueError as exc:
        return _fail(str(exc))
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        captioner = Captioner.from_checkpoint(args.checkpoint or args.model)
        captioner.decoding.check(options)  # before any photo: what this model cannot honour
    except (CheckpointError, ValueError, OSError) as exc:
        return _fail(flag_message(str(exc), DecodeOptions))
    if args.overlay_dir:
        try:
            args.overlay_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _fail(f"{args.overlay_dir}: cannot create overlay directory ({exc.strerror})")
    style = map_style(captioner.config)
    failed, results = 0, []
    # One search per PHOTOS_PER_CALL photos; the output keeps the order they were named in.
    for names in in_chunks(args.photos, PHOTOS_PER_CALL):
        loaded, errors = [], {}  # errors: position in the chunk -> what went wrong
        for i, name in enumerate(names):
            try:
                loaded.append((i, load_image(name)))
            except ImageError as exc:
                print(f"error: {exc}", file=sys.stderr)
                errors[i] = exc.reason
                failed += 1
        captions = captioner.caption([photo for _, photo in loaded], options) if loaded else []
        captioned = {i: (photo, caption) for (i, photo), caption in zip(loaded, captions)}
        for i, name in enumerate(names):
            if i in errors:
                if args.json:  # a photo that failed keeps its place, saying what went wrong
                    results.append({"image": name, "error": errors[i]})
                continue
            photo, caption = captioned[i]
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
