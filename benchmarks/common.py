"""Shared helpers for the benchmark scripts: machine description and timing."""
from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import date
from typing import Callable


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {date.today().isoformat()}")


def median_ms(fn: Callable[[], object], runs: int = 10, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def per_second(step: Callable[[], object], items_per_step: int, steps: int, device,
               warmup: int = 2) -> float:
    """Items per second over `steps` calls of step() after `warmup` calls, waiting for the
    GPU's queued work (if any) before reading the clock."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return items_per_step * steps / (time.perf_counter() - start)


CAPTIONS_PER_IMAGE = 5  # Flickr8k has 5 per photo, COCO 5 to 7


def random_batch(image_shape: tuple[int, ...], batch_size: int, words: int, vocab: int, device):
    """A training Batch of batch_size random captions of `words` words, CAPTIONS_PER_IMAGE
    per image as in training (an image's captions together), and random images (or features)
    of image_shape."""
    import torch

    from training.batches import Batch

    captions = torch.randint(4, vocab, (batch_size, words + 1))
    captions[:, 0] = 1
    images = -(-batch_size // CAPTIONS_PER_IMAGE)
    return Batch(torch.randn(images, *image_shape), captions,
                 torch.arange(batch_size) // CAPTIONS_PER_IMAGE).to(device)


def machine_on(device) -> str:
    """machine(), and the GPU's name on CUDA."""
    import torch

    return machine() + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")


def gpu_peak_memory(device) -> str:
    """", peak GPU memory X GiB" on CUDA (since the last reset), "" elsewhere."""
    import torch

    if device.type != "cuda":
        return ""
    return f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
