"""Where decoding time goes: torch.profiler's top operators for beam search, and this
machine's memory bandwidth (which bounds a decoding step at small batch sizes).

    python -m benchmarks.profile_decoding [--checkpoint PATH] [--images 1,100]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from captioner import Captioner
from captioner.search import search

from .common import machine, median_ms


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--checkpoint")
    parser.add_argument("--images", default="1,100")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    block = torch.empty(25_000_000)  # 100 MB
    copy_ms = median_ms(block.clone, runs=5)
    print(f"memory bandwidth: {2 * block.numel() * 4 / copy_ms / 1e6:.1f} GB/s "
          "(100 MB copy, read + write)")
    captioner = Captioner.from_checkpoint(args.checkpoint)
    decoder = captioner.decoder
    weights_mb = sum(p.numel() for p in decoder.parameters()) * 4 / 2**20
    print(f"decoder weights: {weights_mb:.1f} MB (float32)")
    torch.manual_seed(0)
    for n in map(int, args.images.split(",")):
        features = torch.rand(n, 49, captioner.config.encoder_dim) * 2
        with torch.inference_mode():
            search(decoder, features, beam_size=args.beam,
                        content_words=captioner.decoding.content_words)  # warm-up
            start = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                search(decoder, features, beam_size=args.beam, content_words=captioner.decoding.content_words)
            seconds = time.perf_counter() - start
        print(f"\nbeam {args.beam}, {n} image(s): {seconds * 1e3:.1f} ms (profiled)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
