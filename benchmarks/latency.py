"""Caption latency for one 640x480 JPEG, end to end, and where the time goes.

    python -m benchmarks.latency [--checkpoint PATH] [--runs 20]

End to end = decode the file, preprocess, encoder, beam search (beam 3), attention maps,
words. Prints medians after warm-up. Then the cost of the shared decoding defaults against
the captioner alone (no grounding, no fusion) on each example photo, measured alternately in
the same run: grounding adds the tagger and, for a photo with tags, constrained beam search.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from captioner import Captioner
from captioner.decoding import DEFAULT_OPTIONS
from captioner.images import load_image

from .common import machine, median_ms

EXAMPLE = Path(__file__).resolve().parents[1] / "captioner" / "examples" / "astronaut.jpg"


def jpeg_640x480() -> bytes:
    buffer = io.BytesIO()
    Image.open(EXAMPLE).convert("RGB").resize((640, 480)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    captioner = Captioner.from_checkpoint(args.checkpoint)
    data = jpeg_640x480()
    print(f"machine: {machine()}")
    print(f"model: {args.checkpoint or 'shipped default'} ({captioner.config.attention}, "
          f"grid {captioner.config.image_size // 32}x{captioner.config.image_size // 32})")

    end_to_end = median_ms(lambda: captioner.caption(data, beam_size=3), args.runs)
    photo = load_image(data)
    decode = median_ms(lambda: load_image(data), args.runs)
    with torch.inference_mode():
        pixels = captioner.preprocessing.batch([photo])
        features = captioner.encoder(pixels)
    preprocess = median_ms(lambda: captioner.preprocessing.batch([photo]), args.runs)

    def encode():
        with torch.inference_mode():
            captioner.encoder(pixels)
    encoder = median_ms(encode, args.runs)
    beams = {k: median_ms(lambda k=k: captioner.caption_features(
        features.features, features.grid, beam_size=k), args.runs) for k in (1, 3, 5)}
    print(f"end to end, beam 3:      {end_to_end:7.1f} ms (median of {args.runs})")
    print(f"  decode JPEG:           {decode:7.1f} ms")
    print(f"  preprocess:            {preprocess:7.1f} ms")
    print(f"  encoder:               {encoder:7.1f} ms")
    for k, ms in beams.items():
        print(f"  decoder, beam {k}:       {ms:7.1f} ms")
    print(f"decoder (beam 3) / encoder: {beams[3] / encoder:.2f}")
    print(f"beam 5 / beam 1 decoding:   {beams[5] / beams[1]:.2f}")
    settings = {"defaults": DEFAULT_OPTIONS,
                "no fusion": DEFAULT_OPTIONS.replace(fusion_weight=0.0),
                "alone": DEFAULT_OPTIONS.replace(grounding=False, fusion_weight=0.0)}
    print("end to end (beam 3): the shared defaults, grounding without language model fusion, "
          "and the captioner alone, measured alternately:")
    for path in sorted(EXAMPLE.parent.glob("*.jpg")):
        photo_bytes = path.read_bytes()
        tags = [t.word for t in captioner.caption(photo_bytes)[0].tags]
        times: dict[str, list[float]] = {name: [] for name in settings}
        for options in settings.values():  # warm-up
            captioner.caption(photo_bytes, options)
        for _ in range(args.runs):  # alternate, so all see the same machine
            for name, options in settings.items():
                times[name].append(median_ms(lambda: captioner.caption(photo_bytes, options), 1,
                                             warmup=0))
        ms = {name: statistics.median(values) for name, values in times.items()}
        print(f"  {path.name:>14}: " + ", ".join(f"{name} {value:6.1f} ms" for name, value
                                                  in ms.items())
              + f"; defaults / alone {ms['defaults'] / ms['alone']:.2f}x, no fusion / alone "
              f"{ms['no fusion'] / ms['alone']:.2f}x  (tags: {', '.join(tags) or 'none'})")

if __name__ == "__main__":
    main()
