"""Second-stage throughput: encoder top blocks + decoder trained end to end from pixels.

    python -m benchmarks.finetune_speed [--device cuda] [--image-size 448] [--blocks 2] \
        [--precision fp32,bf16] [--batch-size 32]

Random pixels stand in for decoded JPEGs (decoding runs in DataLoader workers, beside the
step), so this measures the training step of training.finetune: encoder forward (the
frozen blocks without autograd), decoder, backward into the top blocks, optimizer step.
"""
from __future__ import annotations

import argparse

import torch

from captioner import build_decoder, ModelConfig
from captioner.encoder import build_encoder, top_blocks
from training.config import FinetuneConfig
from training.distributed import Runtime
from training.finetune import EncoderDecoder
from training.loop import Progress, make_optimizer, train_step

from .common import gpu_peak_memory, machine_on, per_second, random_batch

COCO_CAPTIONS = 566_747


def captions_per_second(attention: str, image_size: int, blocks: int, batch_size: int,
                        steps: int, device: torch.device, precision: str) -> float:
    torch.manual_seed(0)
    config = FinetuneConfig(data="-", batch_size=batch_size, finetune_blocks=blocks)
    model_config = ModelConfig(attention=attention, image_size=image_size, vocab_size=2541)
    encoder = build_encoder(model_config.encoder).to(device)
    trained = top_blocks(encoder, blocks)
    for block in trained:
        block.requires_grad_(True)
    decoder = build_decoder(model_config).to(device)
    model = EncoderDecoder(encoder, decoder)
    optimizer = make_optimizer(
        [{"params": decoder.parameters()},
         {"params": [p for b in trained for p in b.parameters()], "lr": config.encoder_lr}], config)
    runtime = Runtime(device, precision=precision)
    scaler, progress = runtime.grad_scaler(), Progress()
    batch = random_batch((3, image_size, image_size), batch_size, 13, 2541, device)

    return per_second(
        lambda: train_step(model, batch, optimizer, config, progress, runtime, scaler),
        batch_size, steps, device, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {machine_on(device)}")
    for precision in args.precision.split(","):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rate = captions_per_second("soft", args.image_size, args.blocks, args.batch_size,
                                   args.steps, device, precision)
        memory = gpu_peak_memory(device)
        print(f"fine-tune {args.blocks} block(s) at {args.image_size} px, {precision}: "
              f"{rate:7.1f} captions/s (batch {args.batch_size}) -> COCO epoch "
              f"{COCO_CAPTIONS / rate / 60:.1f} min{memory}")


if __name__ == "__main__":
    main()
