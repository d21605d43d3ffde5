"""Caption latency for one 640x480 JPEG, end to end, where the time goes, and what batching,
fused decoding steps and int8 products change.

    python -m benchmarks.latency [--checkpoint PATH] [--runs 20] [--photos 1,8,32]
                                 [--batch-runs 5] [--no-examples]

Everything runs in one process, one after the other, so the ratios compare like with like.
Times are medians after warm-up unless said otherwise; "x448" is a time divided by a bare
encoder forward at 448 px (the backbone alone on one 448x448 input: no JPEG, no preprocessing,
no ImageNet head), the yardstick of every ratio. Printed:

1. load (once each, not medians): the checkpoint and its encoder, the caption language model,
   and the decoding tables each builds at its first decode (captioner.fused).
2. the bare encoder forward at 448 px, and at the model's own input size.
3. one photo end to end with the shared defaults (beam 3, grounding, language-model fusion)
   and its parts: decode JPEG, preprocess, encoder, tags, search; the search by part: prepare
   (per-photo projections), decoder steps, language-model steps, the rest (scores, top-k,
   repeat blocking, bookkeeping), timed inside those calls.
4. the search of (3) and its parts for each decoding variant: layer by layer
   (Decoder.fuse_steps off: the reference), fused, and fused int8 (ModelConfig.quantized).
5. per photo with N photos in one call (--photos): end to end from JPEG bytes and the search
   alone, each call's median divided by N, for each variant; then the encoder's cost per photo
   over the most photos run b at a time (captioner.inference.ENCODER_BATCH's choice).
6. decoding at beam 1, 3 and 5; then (unless --no-examples) the shared defaults against
   grounding without fusion and the captioner alone on each example photo, alternately.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from PIL import Image, ImageOps

from captioner import Captioner, build_decoder
from captioner.options import DEFAULT_OPTIONS
from captioner.images import load_image
from captioner.inference import ENCODER_BATCH, in_chunks, shipped_language_model

from .common import machine, median_ms

EXAMPLES = Path(__file__).resolve().parents[1] / "captioner" / "examples"
EXAMPLE = EXAMPLES / "astronaut.jpg"
YARDSTICK_SIZE = 448
# name -> (fused steps, int8 products)
VARIANTS = {"layer by layer": (False, False), "fused": (True, False), "fused int8": (True, True)}
# The search's parts: the concept reader (read once a call, for the person floor, the verdict
# and the decoder's gates), the decoder's per-photo work, its steps, the language model's steps,
# and the rest (the loop's own work: rules, picking, bookkeeping).
SEARCH_PARTS = ("concepts", "prepare", "decoder steps", "language model steps", "rest")


def jpeg_640x480(path: Path = EXAMPLE, variation: int = 0) -> bytes:
    """A 640x480 JPEG of an example photo; variation > 0 crops it a little more each time
    and mirrors every other one, so that a batch holds distinct photos."""
    image = Image.open(path).convert("RGB")
    if variation:
        margin = 0.03 * variation
        width, height = image.size
        image = image.crop((int(width * margin), int(height * margin),
                            int(width * (1 - margin)), int(height * (1 - margin))))
        if variation % 2:
            image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.resize((640, 480)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def many_photos(n: int) -> list[bytes]:
    """n distinct 640x480 JPEGs made from the example photos."""
    examples = sorted(EXAMPLES.glob("*.jpg"))
    return [jpeg_640x480(examples[i % len(examples)], i // len(examples)) for i in range(n)]


def variant(captioner: Captioner, fused: bool, quantized: bool) -> Captioner:
    """The captioner with its own decoder weights, decoded layer by layer or fused, in float
    or int8; the encoder is shared."""
    decoder = build_decoder(dataclasses.replace(captioner.config, quantized=quantized))
    decoder.load_state_dict(captioner.decoder.state_dict())
    decoder.fuse_steps = fused
    return Captioner(captioner.encoder, decoder, captioner.vocab, captioner.preprocessing,
                     captioner.metadata, captioner.encoder_key)


class PartTimer:
    """Milliseconds spent inside chosen methods of chosen objects, by part, while timing()."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)

    @contextmanager
    def timing(self, owner: object, method: str, part: str) -> Iterator[None]:
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.ms[part] += (time.perf_counter() - start) * 1e3
        setattr(owner, method, timed)  # the instance's attribute hides the class's method
        try:
            yield
        finally:
            delattr(owner, method)


def search_by_part(captioner: Captioner, data: bytes, runs: int, warmup: int = 2
                   ) -> dict[str, float]:
    """Medians of one photo's tags (the ImageNet head's pass and the tagger), search and the
    search's parts (ms)."""
    encoded = captioner.encode([data])
    language = shipped_language_model().model
    timed = [(captioner.decoding, "classifier", "tags"), (captioner.decoding, "ground", "tags"),
             (captioner.decoder, "prepare", "prepare"),
             (captioner.decoder, "step", "decoder steps"),
             (language, "step", "language model steps")]
    if captioner.decoder.concept_reader is not None:
        timed.append((captioner.decoder.concept_reader, "forward", "concepts"))
    samples = []
    for run in range(warmup + runs):
        timer = PartTimer()
        with ExitStack() as stack:
            for owner, method, part in timed:
                stack.enter_context(timer.timing(owner, method, part))
            start = time.perf_counter()
            captioner.caption_encoded(encoded, DEFAULT_OPTIONS)
            total = (time.perf_counter() - start) * 1e3
        if run < warmup:
            continue
        parts = {name: timer.ms[name] for name in ("tags", *SEARCH_PARTS[:-1])}
        parts["search"] = total - parts["tags"]
        parts["rest"] = parts["search"] - sum(parts[name] for name in SEARCH_PARTS[:-1])
        samples.append(parts)
    return {name: statistics.median(s[name] for s in samples) for name in samples[0]}


def load_times(checkpoint: str | None) -> tuple[Captioner, dict[str, float]]:
    """The captioner, and how long its parts took to load or build (ms, once each)."""
    times = {}
    start = time.perf_counter()
    captioner = Captioner.from_checkpoint(checkpoint)
    times["checkpoint and encoder"] = (time.perf_counter() - start) * 1e3
    shipped_language_model.cache_clear()
    start = time.perf_counter()
    language = shipped_language_model().model
    times["language model"] = (time.perf_counter() - start) * 1e3
    with torch.inference_mode():
        for name, build in (("decoder's fused tables", captioner.decoder.step_layers),
                            ("language model's fused tables",
                             lambda: language.step_layers(captioner.config.quantized))):
            start = time.perf_counter()
            build()
            times[name] = (time.perf_counter() - start) * 1e3
    return captioner, times


def bare_encoder_ms(captioner: Captioner, size: int, runs: int) -> float:
    """The backbone alone on one size x size input."""
    pixels = torch.randn(1, 3, size, size).contiguous(memory_format=torch.channels_last)

    def forward() -> None:
        with torch.inference_mode():
            captioner.encoder.backbone(pixels)
    return median_ms(forward, runs)


def row(name: str, ms: float, yardstick: float, width: int = 28) -> str:
    return f"  {name + ':':<{width}} {ms:8.1f} ms  {ms / yardstick:6.2f} x448"


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per one-photo figure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", default="1,8,32",
                        help="photos per call for the per-photo figures (comma-separated)")
    parser.add_argument("--batch-runs", type=int, default=5,
                        help="timed calls per figure with many photos")
    parser.add_argument("--no-examples", action="store_true",
                        help="skip the per-example comparison of decoding settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    captioner, loaded = load_times(args.checkpoint)
    side = captioner.config.image_size
    print(f"model: {args.checkpoint or 'shipped default'} ({captioner.config.attention}, "
          f"grid {side // 32}x{side // 32}, quantized {captioner.config.quantized})")
    print("load (once each):")
    for name, ms in loaded.items():
        print(f"  {name + ':':<32} {ms:8.1f} ms")

    yardstick = bare_encoder_ms(captioner, YARDSTICK_SIZE, args.runs)
    print(f"bare encoder forward at {YARDSTICK_SIZE} px: {yardstick:7.1f} ms "
          f"(median of {args.runs}; x448 below divides by it)")
    if side != YARDSTICK_SIZE:
        print(row(f"bare encoder at {side} px", bare_encoder_ms(captioner, side, args.runs),
                  yardstick))

    data = jpeg_640x480()
    end_to_end = median_ms(lambda: captioner.caption(data), args.runs)
    photo = load_image(data)
    with torch.inference_mode():
        pixels = captioner.preprocessing.batch([photo])

    def encode() -> None:
        with torch.inference_mode():
            captioner.encoder(pixels)
    parts = search_by_part(captioner, data, args.runs)
    print(f"end to end, one 640x480 JPEG, shared defaults (beam 3, grounding, fusion "
          f"{DEFAULT_OPTIONS.fusion_weight}), median of {args.runs}:")
    print(row("end to end", end_to_end, yardstick))
    print(row("decode JPEG", median_ms(lambda: load_image(data), args.runs), yardstick))
    print(row("preprocess", median_ms(lambda: captioner.preprocessing.batch([photo]),
                                      args.runs), yardstick))
    print(row(f"encoder ({side} px)", median_ms(encode, args.runs), yardstick))
    print(row("tags", parts["tags"], yardstick))
    print(row("search", parts["search"], yardstick))
    for name in SEARCH_PARTS:
        print(row(f"  {name}", parts[name], yardstick))

    variants = {name: variant(captioner, fused, quantized)
                for name, (fused, quantized) in VARIANTS.items()}
    print("the search of one photo by decoding variant (shared defaults):")
    for name, other in variants.items():
        parts = search_by_part(other, data, args.runs)
        print(row(name, parts["search"], yardstick, 16) + "; " + ", ".join(
            f"{part} {parts[part]:.1f}" for part in SEARCH_PARTS) + " ms")

    counts = [int(n) for n in args.photos.split(",") if n]
    print(f"per photo, N photos in one call (median of {args.batch_runs} calls / N; shared "
          "defaults):")
    print(f"  {'variant':<16} {'N':>3}  {'end to end':>10}  {'x448':>6}  {'search':>8}  "
          f"{'x448':>6}")
    for n in counts:
        photos = many_photos(n)
        for name, other in variants.items():
            encoded = other.encode(photos)
            whole = median_ms(lambda: other.caption(photos), args.batch_runs, warmup=1) / n
            search = median_ms(lambda: other.caption_encoded(encoded), args.batch_runs,
                               warmup=1) / n
            print(f"  {name:<16} {n:>3}  {whole:7.1f} ms  {whole / yardstick:6.2f}  "
                  f"{search:5.1f} ms  {search / yardstick:6.2f}")
    if counts:
        encoder_batches(captioner, max(counts), args.batch_runs, yardstick)

    print(f"decoding one photo (encoded), shared defaults at beam k, median of {args.runs}:")
    encoded = captioner.encode([data])
    beams = {k: median_ms(lambda k=k: captioner.caption_encoded(encoded, beam_size=k),
                          args.runs) for k in (1, 3, 5)}
    for k, ms in beams.items():
        print(row(f"decoder, beam {k}", ms, yardstick))
    print(f"beam 5 / beam 1 decoding: {beams[5] / beams[1]:.2f}")
    if not args.no_examples:
        compare_settings(captioner, args.runs)


def encoder_batches(captioner: Captioner, n: int, runs: int, yardstick: float) -> None:
    """The encoder's cost per photo over n photos run b at a time (ENCODER_BATCH's choice)."""
    with torch.inference_mode():
        pixels = captioner.preprocessing.batch([load_image(d) for d in many_photos(n)])

        def encode(size: int) -> None:
            for chunk in in_chunks(pixels, size):
                captioner.encoder(chunk)
        sizes = sorted({1, 2, ENCODER_BATCH, 8, n})
        print(f"the encoder over {n} photos, b at a time (median of {runs}; the captioner "
              f"uses b = {ENCODER_BATCH}), per photo:")
        for size in sizes:
            print(row(f"b = {size}", median_ms(lambda: encode(size), runs, warmup=1) / n,
                      yardstick))


def compare_settings(captioner: Captioner, runs: int) -> None:
    settings = {"defaults": DEFAULT_OPTIONS,
                "no fusion": DEFAULT_OPTIONS.replace(fusion_weight=0.0),
                "alone": DEFAULT_OPTIONS.replace(grounding=False, fusion_weight=0.0)}
    print("end to end (beam 3): the shared defaults, grounding without language model fusion, "
          "and the captioner alone, measured alternately:")
    for path in sorted(EXAMPLES.glob("*.jpg")):
        photo_bytes = path.read_bytes()
        tags = [t.word for t in captioner.caption(photo_bytes)[0].tags]
        times: dict[str, list[float]] = {name: [] for name in settings}
        for options in settings.values():  # warm-up
            captioner.caption(photo_bytes, options)
        for _ in range(runs):  # alternate, so all see the same machine
            for name, options in settings.items():
                times[name].append(_once_ms(lambda: captioner.caption(photo_bytes, options)))
        ms = {name: statistics.median(values) for name, values in times.items()}
        print(f"  {path.name:>14}: " + ", ".join(f"{name} {value:6.1f} ms" for name, value
                                                  in ms.items())
              + f"; defaults / alone {ms['defaults'] / ms['alone']:.2f}x, no fusion / alone "
              f"{ms['no fusion'] / ms['alone']:.2f}x  (tags: {', '.join(tags) or 'none'})")


def _once_ms(fn: Callable[[], object]) -> float:
    return median_ms(fn, 1, warmup=0)


if __name__ == "__main__":
    main()
