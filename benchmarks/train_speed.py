"""Training throughput (captions/s) of the real training step, on any device and precision.

    python -m benchmarks.train_speed                        # CPU, Flickr8k shapes (7x7 grid)
    python -m benchmarks.train_speed --device cuda --grid 14 --batch-size 256 \
        --precision fp32,bf16 [--compile]                   # a GPU, COCO at 448 px

Random features stand in for the cache (same shapes as the real one), so this measures
training.loop.train_step alone: forward, loss, backward, clipping and the optimizer step.
Prints the epoch time this implies for Flickr8k (30,000 captions) and COCO (Karpathy
train + restval: 113,287 images, 566,747 captions) and the peak GPU memory.
"""
from __future__ import annotations

import argparse

import torch

from captioner import build_decoder, ModelConfig
from training.config import TrainConfig
from training.distributed import Runtime
from training.loop import Progress, make_optimizer, train_step

from .common import gpu_peak_memory, machine_on, per_second, random_batch

EPOCH_CAPTIONS = {"Flickr8k": 30_000, "COCO": 566_747}


def captions_per_second(attention: str, batch_size: int, steps: int, device: torch.device,
                        precision: str = "fp32", grid: int = 7, length: int = 13,
                        vocab: int = 2541, compile: bool = False, **model: object) -> float:
    """model: other ModelConfig fields (input_feeding=False, ...)."""
    torch.manual_seed(0)
    config = TrainConfig(data="-", batch_size=batch_size,
                         model=ModelConfig(attention=attention, **model))
    decoder = build_decoder(config.model_config(vocab, 1280)).to(device)
    if compile:
        decoder.advance = torch.compile(decoder.advance, dynamic=True)
    optimizer = make_optimizer([{"params": decoder.parameters()}], config)
    runtime = Runtime(device, precision=precision)
    scaler = runtime.grad_scaler()
    progress = Progress()
    batch = random_batch((grid * grid, 1280), batch_size, length, vocab, device)

    return per_second(
        lambda: train_step(decoder, batch, optimizer, config, progress, runtime, scaler),
        batch_size, steps, device, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32,bf16,fp16")
    parser.add_argument("--grid", type=int, default=7, help="7 (224 px input) or 14 (448 px)")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {machine_on(device)}")
    for precision in args.precision.split(","):
        for attention in ("soft", "hard"):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rate = captions_per_second(attention, args.batch_size, args.steps, device, precision,
                                       args.grid, compile=args.compile)
            epochs = ", ".join(f"{name} epoch {n / rate / 60:.1f} min"
                               for name, n in EPOCH_CAPTIONS.items())
            memory = gpu_peak_memory(device)
            print(f"{attention} {precision}{' compiled' if args.compile else ''}: {rate:8.1f} "
                  f"captions/s (batch {args.batch_size}, 13 words, {args.grid}x{args.grid} grid) "
                  f"-> {epochs}{memory}")


if __name__ == "__main__":
    main()
