"""Does the map land on the object? Attention correctness (Liu, Mao, Sha and Yuille 2017,
"Attention Correctness in Neural Image Captioning") on photos with COCO instance annotations.

For every caption word that names a COCO category present in the photo, take that word's
attention map (h, w) and the category's region on the same grid (the union of its instances,
as boxes or as segmentation masks), and measure
- mass: the attention inside the region, sum over cells of alpha * coverage;
- area: the region's share of the photo, the mean coverage (a uniform map's mass);
- ratio: mean mass / mean area over the words (1.0 = no better than a uniform map); the mean of
  the per-word ratios is reported too, though one tiny object can dominate it;
- pointing: whether the map's peak cell is mostly inside the region (coverage > 0.5), and the
  share of cells that are, which is a peak put at random's chance of a hit.
A cell's coverage is the exact fraction of it the region covers once the photo is squashed
to the model's square input, as captioner.preprocessing does (no crop), so grid cell (r, c)
spans x in [c W / w, (c + 1) W / w) of a W-pixel-wide photo.

Words are reported by kind, from COCO's supercategory of the category they name (the
instances JSON's category list; captioner.grounding.SUPERCATEGORIES where a file has none):
people (person), animals (animal), vehicles (vehicle), food (food) and objects (every other
supercategory: indoor and outdoor things, furniture, kitchen, electronic, appliance, sports,
accessory), and all of them together. Scenes and stuff (snow, grass, beach, water, sky) are not
COCO instance categories and have no boxes or masks, so their words cannot be measured here.

Captions: the model's own (beam search, the default DecodeOptions) and the human references,
teacher-forced (the map under reference word t is the one the model attends with while
predicting it). Hard attention runs once per --hard-modes entry (sample: --seed).

A model that reads concepts also gets the rows of its supervision targets (training.loop
AttentionSupervision): on the words that have a target map (the class activation map of the
word's ImageNet classes, or its detector's cells), "own:model" / "refs:model" score the
model's maps and "own:target" / "refs:target" the targets themselves, on the same words. The
targets' rows are what a decoder that matched its supervision exactly would reach.

    python -m benchmarks.attention_correctness \\
        --data ../shared/data/coco_dev/dataset_coco_dev.json \\
        --instances ../shared/data/coco_dev/instances_dev.json \\
        --checkpoint captioner/weights/soft_flickr8k.pt captioner/weights/hard_flickr8k.pt \\
        --out results/attention_correctness.json
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Collection, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from captioner import Captioner, Vocabulary
from captioner.options import HARD_MODES, DecodeOptions
from captioner.grounding import SUPERCATEGORIES
from training.objects import word_mentions
from training.train import concept_of_words

from .common import machine

PEOPLE = "person"
# COCO supercategory -> word kind; any other supercategory is "objects".
KIND_OF_SUPERCATEGORY = {"person": "people", "animal": "animals", "vehicle": "vehicles",
                         "food": "food"}
OTHER_KIND = "objects"
WORD_KINDS = ("people", "animals", "vehicles", "food", OTHER_KIND, "all")
REGION_KINDS = ("box", "mask")
SOURCES = ("own", "references")
# The supervision targets' rows (models that read concepts): (source, the model's maps on the
# words that have a target, the targets on the same words).
TARGET_SOURCES = (("own", "own:model", "own:target"), ("references", "refs:model", "refs:target"))
POINT_COVERAGE = 0.5  # the peak cell hits when the region covers more than half of it
# Halves of the photos by COCO id, so that a setting chosen on one half is checked on photos it
# was not chosen on: "tune" holds the even ids, "check" the odd ones.
PARTS = {"all": lambda cocoid: True, "tune": lambda cocoid: cocoid % 2 == 0,
         "check": lambda cocoid: cocoid % 2 == 1}

# --- Which words name which category --------------------------------------------------------

class Mention(NamedTuple):
    index: int  # position in the caption of the name's last word (its head noun)
    category: str


def mentions(words: Sequence[str], categories: Collection[str]) -> list[Mention]:
    """Every name of one of `categories` in the caption, by the project's one word table
    (CHAIR's synonyms, training.objects): "a hot dog and two dogs" -> [(2, hot dog), (5, dog)]."""
    return [Mention(at, category) for at, category in word_mentions(words)
            if category in categories]


def word_kind(category: str, supercategory: str | None = None) -> str:
    """The kind of word naming `category`, by its COCO supercategory ("dog", "animal" ->
    animals; "chair", "furniture" -> objects). Without one, captioner.grounding's table of
    supercategories (and "person") stands in."""
    if supercategory is None:
        supercategory = "person" if category == PEOPLE else next(
            (group for group, members in SUPERCATEGORIES.items() if category in members), None)
    return KIND_OF_SUPERCATEGORY.get(supercategory, OTHER_KIND)


# --- Regions on the attention grid ----------------------------------------------------------

def _overlaps(edges: np.ndarray, cells: int) -> np.ndarray:
    """(cells, len(edges) - 1): the length of interval [edges[k], edges[k+1]) inside cell
    [r, r + 1), all in grid units."""
    starts = np.arange(cells, dtype=np.float64)[:, None]
    return np.clip(np.minimum(edges[None, 1:], starts + 1) - np.maximum(edges[None, :-1], starts),
                   0.0, None)


def _coverage(inside: np.ndarray, y_edges: np.ndarray, x_edges: np.ndarray,
              grid: tuple[int, int]) -> np.ndarray:
    """Per cell, the covered fraction of a region made of rectangles: inside (Ny, Nx) says
    which rectangles [y_edges[i], y_edges[i+1]) x [x_edges[j], ...) (grid units) it holds."""
    rows, cols = _overlaps(y_edges, grid[0]), _overlaps(x_edges, grid[1])  # (h, Ny), (w, Nx)
    return rows @ inside.astype(np.float64) @ cols.T  # (h, w); a cell has area 1


def box_coverage(boxes: Iterable[Sequence[float]], size: tuple[int, int],
                 grid: tuple[int, int]) -> np.ndarray:
    """The exact covered fraction of each of the (h, w) cells by the union of COCO boxes
    (x, y, width, height in pixels) on a photo of size (W, H) squashed onto the grid."""
    (width, height), (h, w) = size, grid
    spans = np.array([(x * w / width, y * h / height, (x + bw) * w / width, (y + bh) * h / height)
                      for x, y, bw, bh in boxes], dtype=np.float64).reshape(-1, 4)
    spans[:, [0, 2]] = spans[:, [0, 2]].clip(0, w)
    spans[:, [1, 3]] = spans[:, [1, 3]].clip(0, h)
    x_edges = np.unique(np.concatenate([[0.0, w], spans[:, 0], spans[:, 2]]))
    y_edges = np.unique(np.concatenate([[0.0, h], spans[:, 1], spans[:, 3]]))
    x_mid, y_mid = (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2
    inside = np.zeros((len(y_mid), len(x_mid)), dtype=bool)  # elementary rectangles in a box
    for x0, y0, x1, y1 in spans:
        inside |= (((y0 < y_mid) & (y_mid < y1))[:, None] & ((x0 < x_mid) & (x_mid < x1))[None])
    return _coverage(inside, y_edges, x_edges, grid)


def mask_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The covered fraction of each cell by a pixel mask (H, W) squashed onto the grid: the
    exact area average of the pixels, split where a cell edge cuts a pixel."""
    height, width = mask.shape
    y_edges = np.arange(height + 1) * (grid[0] / height)
    x_edges = np.arange(width + 1) * (grid[1] / width)
    return _coverage(mask, y_edges, x_edges, grid)


def annotation_mask(segmentation, size: tuple[int, int]) -> np.ndarray:
    """A COCO segmentation (polygons, or RLE for crowds) -> bool mask (H, W), by pycocotools
    as COCO.annToMask does."""
    width, height = size
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():  # pycocotools' decode under numpy 2: a DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


# --- Scoring one word -----------------------------------------------------------------------

class WordScore(NamedTuple):
    mass: float  # attention inside the region
    area: float  # the region's share of the photo
    hit: bool  # the peak cell's coverage > POINT_COVERAGE
    chance: float  # share of cells with coverage > POINT_COVERAGE


def score_word(alpha: np.ndarray, coverage: np.ndarray) -> WordScore:
    """alpha (h, w) summing to 1, coverage (h, w) in [0, 1]."""
    peak = np.unravel_index(int(np.argmax(alpha)), alpha.shape)
    return WordScore(float((alpha * coverage).sum()), float(coverage.mean()),
                     bool(coverage[peak] > POINT_COVERAGE),
                     float((coverage > POINT_COVERAGE).mean()))


def summarise(scores: Sequence[WordScore]) -> dict:
    if not scores:
        return {"words": 0, "mass": None, "area": None, "ratio": None, "mean_word_ratio": None,
                "pointing": None, "pointing_chance": None}
    mass, area, hit, chance = (np.array(column, dtype=np.float64) for column in zip(*scores))
    return {"words": len(scores), "mass": float(mass.mean()), "area": float(area.mean()),
            "ratio": float(mass.mean() / area.mean()),
            "mean_word_ratio": float((mass / area).mean()),
            "pointing": float(hit.mean()), "pointing_chance": float(chance.mean())}


# --- Photos and their regions ---------------------------------------------------------------

@dataclass(frozen=True)
class Photo:
    cocoid: int
    path: Path
    size: tuple[int, int]  # (W, H) as annotated
    references: tuple[tuple[str, ...], ...]  # tokenized human captions
    objects: Mapping[str, tuple[dict, ...]]  # category -> its instance annotations


def load_photos(data: str | Path, instances: str | Path, limit: int | None = None,
                part: str = "all") -> tuple[list[Photo], dict[str, str | None]]:
    """The Karpathy-format photos that have instance annotations (matched by `cocoid`, else
    the file name's number) and belong to `part` (PARTS), in file order, and the annotations'
    categories: name -> supercategory (None where the file gives none)."""
    data, instances = Path(data), Path(instances)
    raw = json.loads(data.read_text(encoding="utf-8"))
    coco = json.loads(instances.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    supercategories = {c["name"]: c.get("supercategory") for c in coco["categories"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    objects: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for annotation in coco["annotations"]:
        objects[annotation["image_id"]][names[annotation["category_id"]]].append(annotation)
    photos = []
    for entry in raw["images"]:
        cocoid = int(entry.get("cocoid", Path(entry["filename"]).stem))
        if cocoid not in objects or not PARTS[part](cocoid):
            continue
        folder = data.parent / entry["filepath"] if entry.get("filepath") else data.parent / "images"
        references = tuple(tuple(s["tokens"]) for s in entry["sentences"] if s.get("tokens"))
        photos.append(Photo(cocoid, folder / entry["filename"], sizes[cocoid], references,
                            {c: tuple(a) for c, a in objects[cocoid].items()}))
        if limit is not None and len(photos) == limit:
            break
    return photos, supercategories


def photo_regions(photo: Photo, grid: tuple[int, int]) -> dict[str, dict[str, np.ndarray]]:
    """kind (box | mask) -> category -> coverage (h, w) of the union of its instances."""
    regions: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in REGION_KINDS}
    for category, instances in photo.objects.items():
        regions["box"][category] = box_coverage([a["bbox"] for a in instances], photo.size,
                                                grid)
        union = np.zeros(photo.size[::-1], dtype=bool)
        for annotation in instances:
            union |= annotation_mask(annotation["segmentation"], photo.size)
        regions["mask"][category] = mask_coverage(union, grid)
    return regions


# --- Captions and their maps ----------------------------------------------------------------

class AttendedCaption(NamedTuple):
    words: list[str]
    alphas: np.ndarray  # (len(words) or more, h, w): row t is the map under word t


def own_captions(captioner: Captioner, features: torch.Tensor, grid: tuple[int, int],
                 options: DecodeOptions, batch_size: int) -> list[AttendedCaption]:
    captions = []
    for start in range(0, len(features), batch_size):
        for caption in captioner.caption_features(features[start:start + batch_size], grid,
                                                  options):
            captions.append(AttendedCaption(caption.words, caption.alphas))
    return captions


def reference_captions(captioner: Captioner, features: torch.Tensor, grid: tuple[int, int],
                       references: Sequence[Sequence[Sequence[str]]], options: DecodeOptions,
                       batch_size: int) -> list[list[AttendedCaption]]:
    """Teacher forcing over each photo's human captions, in eval mode: per photo, one map per
    reference word (unknown words are fed as <unk>; their maps are kept)."""
    vocab: Vocabulary = captioner.vocab
    result = []
    for start in range(0, len(features), batch_size):
        batch = references[start:start + batch_size]
        ids = [vocab.encode(words) for refs in batch for words in refs]
        captions = torch.full((len(ids), max(map(len, ids))), vocab.pad_id)
        for row, caption in enumerate(ids):
            captions[row, :len(caption)] = torch.tensor(caption)
        image_of = torch.tensor([i for i, refs in enumerate(batch) for _ in refs])
        with torch.inference_mode():
            out = captioner.decoder(features[start:start + batch_size].float(), captions,
                                    image_of, hard_mode=options.hard_mode,
                                    temperature=options.attention_temperature)
        alphas = out.alphas.reshape(len(ids), -1, *grid).numpy()  # (B, T, h, w)
        rows = iter(range(len(ids)))
        for refs in batch:
            result.append([AttendedCaption(list(words), alphas[next(rows)]) for words in refs])
    return result


# --- The benchmark --------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    checkpoint: str
    attention: str
    hard_mode: str | None  # None for attentions other than hard
    temperature: float  # the attention temperature it decoded with
    source: str  # own | references, or a TARGET_SOURCES name (models that read concepts)
    region: str  # box | mask
    word_kind: str  # people | animals | vehicles | food | objects | all (WORD_KINDS)
    words: int
    mass: float | None
    area: float | None
    ratio: float | None  # mean mass / mean area
    mean_word_ratio: float | None  # mean over words of mass / area
    pointing: float | None
    pointing_chance: float | None


def score_captions(per_photo: Sequence[Sequence[AttendedCaption]],
                   regions: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
                   categories: Mapping[str, str | None]
                   ) -> dict[tuple[str, str], list[WordScore]]:
    """(region kind, word kind) -> the scores of every word naming a category the photo has;
    `categories`: name -> COCO supercategory (or None), as load_photos gives them. Each word
    counts under its kind and under "all"."""
    kinds = {category: word_kind(category, supercategory)
             for category, supercategory in categories.items()}
    scores: dict[tuple[str, str], list[WordScore]] = defaultdict(list)
    for captions, regions_of in zip(per_photo, regions):
        for caption in captions:
            for mention in mentions(caption.words, categories):
                if mention.category not in regions_of["box"]:  # no such object here
                    continue
                if np.isnan(caption.alphas[mention.index]).any():  # no map from this source
                    continue
                for kind in REGION_KINDS:
                    coverage = regions_of[kind][mention.category]
                    score = score_word(caption.alphas[mention.index], coverage)
                    scores[kind, kinds[mention.category]].append(score)
                    scores[kind, "all"].append(score)
    return scores


def supervision_targets(captioner: Captioner, features: torch.Tensor, grid: tuple[int, int]
                        ) -> tuple[torch.Tensor, np.ndarray] | None:
    """Each word's supervising concept (V,) (-1: none) and each photo's concept maps
    (I, K, h, w), each a distribution over the grid; None for a model that reads no concepts."""
    reader = captioner.decoder.concept_reader
    if reader is None:
        return None
    with torch.inference_mode():
        maps = reader(features.float()).maps  # (I, L, K), each concept's summing to 1
    return (concept_of_words(captioner.vocab, captioner.config),
            maps.transpose(1, 2).reshape(len(features), -1, *grid).numpy())


def on_supervised_words(per_photo: Sequence[Sequence[AttendedCaption]], vocab: Vocabulary,
                        word_concepts: torch.Tensor, maps: np.ndarray
                        ) -> tuple[list[list[AttendedCaption]], list[list[AttendedCaption]]]:
    """The captions twice: with the model's maps and with the supervision targets, both NaN
    (not scored) at every word that has no target."""
    concept_of = word_concepts.tolist()
    models, targets = [], []
    for photo, captions in enumerate(per_photo):
        models.append([])
        targets.append([])
        for caption in captions:
            model = np.full_like(caption.alphas, np.nan)
            target = np.full_like(caption.alphas, np.nan)
            for t, word in enumerate(caption.words[:len(caption.alphas)]):
                concept = concept_of[vocab.stoi[word]] if word in vocab.stoi else -1
                if concept >= 0:
                    model[t], target[t] = caption.alphas[t], maps[photo, concept]
            models[-1].append(AttendedCaption(caption.words, model))
            targets[-1].append(AttendedCaption(caption.words, target))
    return models, targets


def decoding_modes(captioner: Captioner, hard_modes: Sequence[str]) -> list[str | None]:
    """The hard-attention modes for a hard model; one run (None) for any other attention."""
    return list(hard_modes) if captioner.config.attention == "hard" else [None]


def measure(captioner: Captioner, name: str, features: torch.Tensor, grid: tuple[int, int],
            photos: Sequence[Photo], regions: Sequence[Mapping],
            categories: Mapping[str, str | None],
            hard_modes: Sequence[str], temperatures: Sequence[float | None], seed: int,
            beam: int, batch_size: int) -> list[Row]:
    """Rows for every hard mode (hard models) and attention temperature (None: the
    model's own)."""
    rows = []
    targets = supervision_targets(captioner, features, grid)
    for mode in decoding_modes(captioner, hard_modes):
        for temperature in temperatures:
            options = DecodeOptions(beam_size=beam, hard_mode=mode,
                                    attention_temperature=temperature)
            used = captioner.config.attention_temperature if temperature is None else temperature
            torch.manual_seed(seed)
            own = own_captions(captioner, features, grid, options, batch_size)
            torch.manual_seed(seed)
            references = reference_captions(captioner, features, grid,
                                            [p.references for p in photos], options, batch_size)
            sources = {"own": [[c] for c in own], "references": references}
            if targets is not None:
                for source, on_model, on_target in TARGET_SOURCES:
                    sources[on_model], sources[on_target] = on_supervised_words(
                        sources[source], captioner.vocab, *targets)
            for source, per_photo in sources.items():
                scores = score_captions(per_photo, regions, categories)
                for kind in REGION_KINDS:
                    for group in WORD_KINDS:
                        rows.append(Row(name, captioner.config.attention, mode, used, source,
                                        kind, group, **summarise(scores.get((kind, group), []))))
    return rows


def encode(captioner: Captioner, photos: Sequence[Photo], batch_size: int
           ) -> tuple[torch.Tensor, tuple[int, int]]:
    """The photos' annotation grids (N, L, D) and the grid (h, w). Refuses a photo whose
    upright size differs from its annotation's (an EXIF rotation would move its regions)."""
    features, grid = [], None
    for start in range(0, len(photos), batch_size):
        batch = photos[start:start + batch_size]
        encoded = captioner.encode([p.path for p in batch])
        for photo, size in zip(batch, encoded.sizes):
            if tuple(size) != photo.size:
                raise ValueError(f"{photo.path}: the photo is {size[0]}x{size[1]} upright but "
                                 f"annotated as {photo.size[0]}x{photo.size[1]}")
        features.append(encoded.features)
        grid = encoded.grid
    return torch.cat(features), grid


def format_table(rows: Sequence[Row]) -> str:
    header = (f"{'checkpoint':<22} {'decoding':<17} {'T':>4} {'captions':<11} {'region':<6} "
              f"{'kind':<8} {'n':>5} {'mass':>6} {'area':>6} {'ratio':>6} {'w.ratio':>7} "
              f"{'point':>6} {'chance':>6}")
    lines = [header, "-" * len(header)]
    for r in rows:
        decoding = r.attention + (f"/{r.hard_mode}" if r.hard_mode else "")
        if not r.words:
            values = f"{0:>5} " + " ".join(f"{'-':>6}" for _ in range(6))
        else:
            values = (f"{r.words:>5} {100 * r.mass:>5.1f}% {100 * r.area:>5.1f}% "
                      f"{r.ratio:>6.2f} {r.mean_word_ratio:>7.2f} {100 * r.pointing:>5.1f}% "
                      f"{100 * r.pointing_chance:>5.1f}%")
        lines.append(f"{Path(r.checkpoint).name:<22} {decoding:<17} {r.temperature:>4.2g} "
                     f"{r.source:<11} {r.region:<6} {r.word_kind:<8} {values}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Karpathy-format dataset JSON")
    parser.add_argument("--instances", required=True, help="COCO instances JSON of its photos")
    parser.add_argument("--checkpoint", nargs="+", required=True)
    parser.add_argument("--hard-modes", default=",".join(HARD_MODES),
                        help="hard attention's modes to run, comma-separated")
    parser.add_argument("--temperatures", default="",
                        help="attention temperatures to run, comma-separated (default: each "
                             "model's own)")
    parser.add_argument("--beam", type=int, default=DecodeOptions().beam_size)
    parser.add_argument("--seed", type=int, default=0, help="for --hard-modes sample")
    parser.add_argument("--limit", type=int, help="the first N annotated photos only")
    parser.add_argument("--photos", choices=tuple(PARTS), default="all",
                        help="all photos, or the half settings are chosen on (tune: even COCO "
                             "ids) or the half that checks them (check: odd ids)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows here as JSON")
    args = parser.parse_args(argv)
    hard_modes = [m for m in args.hard_modes.split(",") if m]
    for mode in hard_modes:
        if mode not in HARD_MODES:
            parser.error(f"--hard-modes: {mode!r} is not one of {', '.join(HARD_MODES)}")
    try:
        temperatures = [float(t) for t in args.temperatures.split(",") if t] or [None]
        for t in temperatures:
            DecodeOptions(attention_temperature=t)
    except ValueError as exc:
        parser.error(f"--temperatures: {exc}")
    torch.set_num_threads(args.threads)
    photos, categories = load_photos(args.data, args.instances, args.limit, args.photos)
    encoded: dict[object, tuple[torch.Tensor, tuple[int, int]]] = {}
    regions: dict[tuple[int, int], list] = {}
    rows: list[Row] = []
    for path in args.checkpoint:
        captioner = Captioner.from_checkpoint(path)
        key = captioner.encoder_key if captioner.encoder_key is not None else path
        if key not in encoded:
            encoded[key] = encode(captioner, photos, args.batch_size)
        features, grid = encoded[key]
        if grid not in regions:
            regions[grid] = [photo_regions(photo, grid) for photo in photos]
        rows += measure(captioner, path, features, grid, photos, regions[grid], categories,
                        hard_modes, temperatures, args.seed, args.beam, args.batch_size)
        print(f"{path}: done", file=sys.stderr, flush=True)
    print(f"{len(photos)} photos with instance annotations ({args.photos}); grid cells hit "
          f"when their coverage > {POINT_COVERAGE}; ratio = mean mass / mean area, w.ratio = "
          "mean of mass / area")
    print(format_table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python -m benchmarks.attention_correctness " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "machine": machine(), "photos": len(photos), "part": args.photos,
            "synonyms": "captioner/data/coco_synonyms.txt (CHAIR's), via training.objects",
            "word_kinds": {**KIND_OF_SUPERCATEGORY, "any other supercategory": OTHER_KIND},
            "point_coverage": POINT_COVERAGE, "beam": args.beam, "seed": args.seed,
            "rows": [asdict(row) for row in rows]}, indent=1))
    return rows


if __name__ == "__main__":
    main()
