"""Training batches: a caption table, an epoch's batches that keep an image's captions
together, and their DataLoader.

A batch holds each of its images once (features, or pixels when fine-tuning) and every
caption with the row of the image it describes, so the decoder does each image's own work
once for all of its captions.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from captioner.vocab import Vocabulary

from .config import StageConfig
from .data import ImageRecord
from .distributed import Runtime
from .features import FeatureCache


class Batch(NamedTuple):  # a NamedTuple, so DataLoader's pin_memory pins every tensor
    features: torch.Tensor  # (I, L, D) each image of the batch once (or its pixels, fine-tuning)
    captions: torch.Tensor  # (B, T+1) <start> w1 .. wn <end> <pad>...
    image_of: torch.Tensor  # (B,) the row of `features` that caption b describes
    # (I, K) each image's concept vector, for a decoder that reads concepts; else None
    concepts: torch.Tensor | None = None
    # (I,) True where the grid is the photo its captions describe (attention may be
    # supervised there); None: every row
    described: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(None if x is None else x.to(device, non_blocking=True) for x in self))


def caption_table(records: list[ImageRecord], cache: FeatureCache, vocab: Vocabulary
                  ) -> list[tuple[int, list[int]]]:
    """(cache row, word ids) for every training caption."""
    rows = cache.rows([r.path for r in records])
    return [(row, vocab.encode(caption)) for row, r in zip(rows, records) for caption in r.captions]


def image_batches(table: list[tuple[int, list[int]]], batch_size: int, seed: int, epoch: int,
                  processes: int = 1) -> list[list[int]]:
    """Batches of about batch_size captions that keep an image's captions together, so the
    decoder does each image's own work once for all of them; images in a seeded random order.

    The order depends only on (seed, epoch), so a resumed run sees the same batches. With
    several processes, each global batch of batch_size x processes captions is cut into one
    batch per process, consecutive in the list, so a DistributedSampler (rank r takes items
    r, r + processes, ...) hands each process its part of every global batch, and a run on
    one process with batch_size x processes sees exactly the same global batches.
    """
    rng = random.Random(seed * 100_003 + epoch)
    by_image: dict[int, list[int]] = {}
    for i, (image, _) in enumerate(table):
        by_image.setdefault(image, []).append(i)
    images = list(by_image.values())
    rng.shuffle(images)
    order = [i for captions in images for i in captions]
    size = batch_size * processes
    # An image at a batch boundary has its captions in two batches (each does that image's
    # work once); cutting at exactly `size` captions keeps every global batch the same size.
    global_batches = [order[i:i + size] for i in range(0, len(order), size)]
    # The last global batch may be short: it is shared out evenly (the loss is normalised by
    # the global batch, so unequal parts are exact), or dropped when it has fewer captions
    # than there are processes (DDP needs every process to take every step).
    return [batch[len(batch) * r // processes:len(batch) * (r + 1) // processes]
            for batch in global_batches if len(batch) >= processes for r in range(processes)]


def pad_captions(captions: list[list[int]]) -> torch.Tensor:
    padded = torch.zeros(len(captions), max(map(len, captions)), dtype=torch.long)
    for i, ids in enumerate(captions):
        padded[i, :len(ids)] = torch.tensor(ids)
    return padded


def batch_layout(rows: list[tuple[int, list[int]]]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(image, word ids) per caption -> the distinct images in order of first use, the padded
    captions and each caption's index into those images."""
    images = list(dict.fromkeys(image for image, _ in rows))
    index = {image: i for i, image in enumerate(images)}
    return (images, pad_captions([ids for _, ids in rows]),
            torch.tensor([index[image] for image, _ in rows]))


# Words that name a side: a mirrored photo's captions say the other one.
MIRRORED_WORDS = (("left", "right"),)


@dataclass(frozen=True)
class Mirroring:
    """Horizontal-flip augmentation on cached features: in each epoch every training image is
    used mirrored with probability 1/2, its grid read from a cache of the flipped photos and
    "left" and "right" swapped in its captions. Which images are mirrored depends only on
    (seed, epoch), so a resumed run and every process of a distributed one agree."""

    cache: FeatureCache  # grids of the mirrored photos
    rows: dict[int, int]  # plain cache row -> the same image's row in `cache`, in row order
    swaps: tuple[tuple[int, int], ...]  # word ids that trade places
    seed: int

    @classmethod
    def build(cls, plain: FeatureCache, mirrored: FeatureCache, paths: list[str],
              vocab: Vocabulary, seed: int) -> "Mirroring":
        swaps = tuple((vocab.stoi[a], vocab.stoi[b]) for a, b in MIRRORED_WORDS
                      if a in vocab.stoi and b in vocab.stoi)
        by_row = sorted((plain.index[path], path) for path in paths)
        return cls(mirrored, {row: mirrored.index[path] for row, path in by_row}, swaps, seed)

    def chosen(self, epoch: int) -> frozenset[int]:
        """The plain cache rows used mirrored in `epoch`."""
        coins = np.random.default_rng([self.seed, epoch]).random(len(self.rows)) < 0.5
        return frozenset(row for row, heads in zip(self.rows, coins) if heads)

    def swap_words(self, captions: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """captions (B, T) with each pair's words exchanged in the rows where `which` (B,)."""
        which = which.unsqueeze(1)
        swapped = captions.clone()
        for a, b in self.swaps:
            swapped[which & (captions == a)] = b
            swapped[which & (captions == b)] = a
        return swapped


class CachedBatches(Dataset):
    """Item i is batch i: its images' features read once from the memory-mapped cache (in
    DataLoader workers if any), captions padded; with `mirroring`, the images it chose for
    `epoch` from the mirrored cache with their captions' sides swapped."""

    def __init__(self, table, batches: list[list[int]], cache: FeatureCache,
                 mirroring: Mirroring | None = None, epoch: int = 0):
        self.table, self.batches, self.cache, self.mirroring = table, batches, cache, mirroring
        self.mirrored = mirroring.chosen(epoch) if mirroring is not None else frozenset()

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        images, captions, image_of = batch_layout([self.table[j] for j in self.batches[i]])
        flipped = [image in self.mirrored for image in images]
        if not any(flipped):
            return Batch(self.cache.batch(images), captions, image_of)
        features = torch.empty(len(images), *self.cache.features.shape[1:])
        plain = [k for k, f in enumerate(flipped) if not f]
        mirrored = [k for k, f in enumerate(flipped) if f]
        if plain:
            features[plain] = self.cache.batch([images[k] for k in plain])
        features[mirrored] = self.mirroring.cache.batch(
            [self.mirroring.rows[images[k]] for k in mirrored])
        captions = self.mirroring.swap_words(captions, torch.tensor(flipped)[image_of])
        return Batch(features, captions, image_of)


class ImageBatch(NamedTuple):
    """A batch of images without captions (self-critical training samples its own)."""

    features: torch.Tensor  # (I, L, D)
    images: torch.Tensor  # (I,) index of each image in the training records

    def to(self, device: torch.device) -> "ImageBatch":
        return ImageBatch(self.features.to(device, non_blocking=True), self.images)


class CachedImages(Dataset):
    """Item i is batch i of images: their features from the cache and their record index.
    table: (cache row, (record index,)) per image."""

    def __init__(self, table, batches: list[list[int]], cache: FeatureCache):
        self.table, self.batches, self.cache = table, batches, cache

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> ImageBatch:
        entries = [self.table[j] for j in self.batches[i]]
        return ImageBatch(self.cache.batch([row for row, _ in entries]),
                          torch.tensor([record for _, (record,) in entries]))


def epoch_loader(table, reader: Callable[[list[list[int]], int], Dataset], config: StageConfig,
                 runtime: Runtime, epoch: int, skip: int) -> tuple[DataLoader, int]:
    """This process's batches of `epoch` after the first `skip`, and how many it has in all.

    `reader` turns the epoch's batches (lists of table rows) and the epoch into a Dataset of
    Batches.
    DistributedSampler pads the list by repeating batches so that every process takes the
    same number of steps (DDP needs every process in every all-reduce).
    """
    batches = reader(image_batches(table, config.batch_size, config.seed, epoch,
                                      runtime.world_size), epoch)
    sampler = DistributedSampler(batches, num_replicas=runtime.world_size, rank=runtime.rank,
                                 shuffle=False)
    mine = list(sampler)
    # Its own generator: a DataLoader otherwise draws a seed from the global RNG, and a
    # resumed run (which creates its loader mid-epoch) would then diverge from an
    # uninterrupted one.
    loader = DataLoader(torch.utils.data.Subset(batches, mine[skip:]), batch_size=None,
                        num_workers=config.loader_workers,
                        pin_memory=runtime.device.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed + epoch))
    return loader, len(mine)
