"""Resident memory of a process that loads the default model and captions one photo.

    python -m benchmarks.memory [--checkpoint PATH]

This is the captioning part of the app process (Streamlit imported, model loaded once,
one 640x480 caption with overlays); the app's own server adds its web machinery on top.
"""
from __future__ import annotations

import argparse

import torch


def rss_mb() -> tuple[float, float]:
    values = {}
    for line in open("/proc/self/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(2)
    import streamlit  # noqa: F401  (the app process imports it too)

    from captioner import Captioner
    from captioner.overlay import overlay_grid

    from .common import machine
    from .latency import jpeg_640x480

    print(f"machine: {machine()}")
    print(f"after imports:      RSS {rss_mb()[0]:7.1f} MB")
    captioner = Captioner.from_checkpoint(args.checkpoint)
    print(f"after model load:   RSS {rss_mb()[0]:7.1f} MB")
    caption = captioner.caption(jpeg_640x480(), beam_size=3)[0]
    from captioner.images import load_image

    overlay_grid(load_image(jpeg_640x480()), caption.words, caption.alphas)
    rss, peak = rss_mb()
    print(f"after first caption: RSS {rss:7.1f} MB (peak {peak:.1f} MB)")


if __name__ == "__main__":
    main()
