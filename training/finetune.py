"""Second training stage: fine-tune the encoder's top blocks with the decoder, from images.

    python -m training.finetune --init runs/soft/best.pt \
        --data ../shared/data/flickr8k/dataset_flickr8k.json --out runs/soft-ft \
        --finetune-blocks 2 --encoder-lr 1e-5 --lr 1e-4 --device auto --precision bf16

The first stage (training.train) trains the decoder on cached features of a frozen encoder;
here gradients also flow into the encoder's last blocks, with their own lower learning
rate, so images are decoded and encoded at every step (no cache). Batch-norm statistics
stay frozen: the batches are too small to re-estimate them. The checkpoints carry the
fine-tuned encoder weights, which Captioner loads instead of the pretrained ones. Same
loop, logs, resume and torchrun support as the first stage.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from captioner.build import build_checkpoint_encoder, load_decoder
from captioner.decoder import Decoder, TeacherForcedOutput
from captioner.encoder import Encoder, top_blocks
from captioner.images import load_image
from captioner.preprocessing import Preprocessing

from .batches import Batch, batch_layout
from .commands import prog
from .config import FinetuneConfig, parse_config
from .data import ImageRecord, check_image_files
from .distributed import Runtime
from .features import encoded_features
from .loop import Stage, StageData, make_stage, teacher_forcing
from .runner import Start, run_command, run_stage, starting_checkpoint, with_new_words


class EncoderDecoder(nn.Module):
    """images (I, 3, S, S), captions (B, T+1), image_of (B,) -> the decoder's teacher-forced
    output; each photo goes through the encoder once for all of its captions."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, images: torch.Tensor, captions: torch.Tensor,
                image_of: torch.Tensor | None = None) -> TeacherForcedOutput:
        return self.decoder(self.encoder(images).features, captions, image_of)

    def train(self, mode: bool = True) -> "EncoderDecoder":
        super().train(mode)
        self.encoder.eval()  # frozen batch-norm statistics (and no encoder dropout)
        return self


class ImageBatches(Dataset):
    """Item i is batch i: its photos decoded and preprocessed (in a DataLoader worker)."""

    def __init__(self, table, batches: list[list[int]], records: list[ImageRecord], root: Path,
                 preprocessing: Preprocessing):
        self.table, self.batches, self.records = table, batches, records
        self.root, self.preprocessing = root, preprocessing

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        images, captions, image_of = batch_layout([self.table[j] for j in self.batches[i]])
        pixels = self.preprocessing.batch(
            [load_image(self.root / self.records[image].path) for image in images])
        return Batch(pixels, captions, image_of)


def finetune(config: FinetuneConfig) -> Path:
    return run_stage(build_stage, config)


def build_stage(config: FinetuneConfig, runtime: Runtime, start: Start) -> Stage:
    """The decoder and the encoder's top blocks, trained by teacher forcing from images."""
    dataset, train_records = start.dataset, start.train_records
    check_image_files(dataset, train_records + start.val_records)  # missing photos: now, not later
    source, name = starting_checkpoint(config, start.resumed)
    if start.resumed is None and config.grow_vocabulary:
        source = with_new_words(source, name, train_records, config.min_word_count, runtime)
    decoder = load_decoder(source, name).to(runtime.device)
    encoder = build_checkpoint_encoder(source, name).to(runtime.device)
    trained = top_blocks(encoder, config.finetune_blocks)
    for block in trained:
        block.requires_grad_(True)
    vocab, preprocessing = source.vocab, source.preprocessing
    table = [(i, vocab.encode(caption)) for i, record in enumerate(train_records)
             for caption in record.captions]
    data = StageData(table,
                     lambda batches, epoch: ImageBatches(table, batches, train_records,
                                                         dataset.image_root, preprocessing),
                     encoded_features(encoder, preprocessing, dataset.image_root,
                                      runtime.device, runtime.autocast))
    encoder_params = [p for block in trained for p in block.parameters()]
    return make_stage(
        config, runtime, vocab, decoder, data, teacher_forcing,
        model=EncoderDecoder(encoder, decoder), encoder=encoder,
        param_groups=[{"params": decoder.parameters()},
                      {"params": encoder_params, "lr": config.encoder_lr}],
        summary=f"fine-tuning {name} ({source.config.attention} attention, "
                f"{source.config.encoder}@{source.config.image_size}): last "
                f"{config.finetune_blocks} encoder block(s), "
                f"{sum(p.numel() for p in encoder_params):,} encoder parameters at lr "
                f"{config.encoder_lr}; {len(table)} captions of {len(train_records)} images; "
                f"{runtime.world_size} process(es) on {runtime.device.type}, {config.precision}")


def main(argv: list[str] | None = None) -> int:
    return run_command(finetune, parse_config(
        argv, prog("finetune"), FinetuneConfig,
        "Fine-tune the encoder's top blocks and the decoder from images."))


if __name__ == "__main__":
    sys.exit(main())
