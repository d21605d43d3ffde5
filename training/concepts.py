"""Concept detectors learnt from captions, and the concept vectors a decoder trains on.

    python -m training.concepts --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --cache-dir cache --coco-dev ../shared/data/coco_dev/dataset_coco_dev.json \
        --out runs/concepts.pt

A photo is positive for a word when one of its captions uses it (a person word pools into
"person"); each word's detector scores every grid cell and the photo holds the word when any
cell does (noisy-OR, multiple-instance learning; Fang et al. 2015). Detectors train on
Flickr8k's train photos and, where --coco-dev is given, on the half of COCO dev with even ids
(weighted, for the negative evidence Flickr8k lacks: kitchens with nobody in them); the odd half
and Flickr8k val only measure them.

The file written holds:
- the detectors' weights and the concept words (detected, then ImageNet ones);
- every cached photo's concept vector, with the detected part of each training photo scored by
  detectors trained on the other half of the training photos (cross-fitting), so the decoder
  learns to read evidence as noisy as it will be on photos it never saw;
- per concept, quantiles of its scores on Flickr8k val photos that hold it and that do not:
  the noise of pseudo-concepts for caption text without photos (training.text_concepts);
- precision and recall of each detector on Flickr8k val and COCO dev's odd half.
It loads with torch.load(weights_only=True).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from captioner.concepts import ConceptReader, class_concept_matrix
from captioner.encoder import build_encoder
from captioner.files import atomic_write_text
from captioner.flags import positive_int
from captioner.object_words import object_words
from captioner.vocab import FUNCTION_WORDS, plural

from .commands import prog
from .data import CaptionDataset, ImageRecord, load_karpathy
from .features import FeatureCache, ensure_cache
from .objects import PERSON_WORDS

PERSON = "person"  # the pooled concept of every person word
QUANTILES = torch.linspace(0, 1, 21)
COCO_WEIGHT = 10.0  # a COCO photo counts as this many Flickr8k photos in the detectors' loss


def concept_forms(word: str) -> set[str]:
    """The caption words that make a photo positive for the concept `word`."""
    if word == PERSON:
        return set(PERSON_WORDS)
    return {word, plural(word)}


def choose_concepts(records: Sequence[ImageRecord], min_photos: int) -> tuple[str, ...]:
    """The pooled person concept, then content words used in the captions of at least
    min_photos photos (a plural counted with its singular), most frequent first."""
    photos: dict[str, int] = {}
    for record in records:
        for word in {w for caption in record.captions for w in caption}:
            photos[word] = photos.get(word, 0) + 1
    singular = {plural(w): w for w in photos}
    counts: dict[str, int] = {}
    for record in records:
        words = {singular.get(w, w) if singular.get(w, w) in photos else w
                 for caption in record.captions for w in caption}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
    kept = [w for w, n in counts.items()
            if n >= min_photos and w not in FUNCTION_WORDS and w != PERSON and w.isalpha()
            and len(w) > 1]
    return (PERSON, *sorted(kept, key=lambda w: (-counts[w], w)))


def labels(captions: Sequence[Sequence[Sequence[str]]], words: Sequence[str]) -> torch.Tensor:
    """(N, K) 1 where one of photo n's captions uses a form of concept k."""
    forms = [concept_forms(w) for w in words]
    out = torch.zeros(len(captions), len(words))
    for n, photo in enumerate(captions):
        used = {w for caption in photo for w in caption}
        for k, f in enumerate(forms):
            if used & f:
                out[n, k] = 1.0
    return out


def noisy_or_log_probs(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell scores (B, L, K) -> (log p, log (1 - p)) of the photo holding each concept."""
    total = F.softplus(scores).sum(1)  # (B, K) -log(1 - p)
    return torch.log((-torch.expm1(-total)).clamp_min(1e-12)), -total


def train_detectors(features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                    epochs: int, seed: int, lr: float = 2e-3, batch_size: int = 128,
                    weight_decay: float = 1e-4) -> torch.nn.Linear:
    """Linear cell detectors (D -> K) for photos' features (N, L, D) float16 and their labels
    (N, K), each photo's loss weighted by `weights` (N,)."""
    generator = torch.Generator().manual_seed(seed)
    n, cells, dim = features.shape
    detector = torch.nn.Linear(dim, targets.shape[1])
    with torch.no_grad():  # start at each word's base rate, spread over the cells
        rate = ((targets * weights[:, None]).sum(0) / weights.sum()).clamp(1e-4, 0.5)
        detector.weight.normal_(0, 1e-3, generator=generator)
        detector.bias.copy_(torch.log(torch.expm1(-torch.log1p(-rate) / cells)))
    optimizer = torch.optim.AdamW(detector.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * -(-n // batch_size))
    for _ in range(epochs):
        for rows in torch.randperm(n, generator=generator).split(batch_size):
            log_p, log_not = noisy_or_log_probs(detector(features[rows].float()))
            y, w = targets[rows], weights[rows, None]
            loss = -(w * (y * log_p + (1 - y) * log_not)).sum() / (w.sum() * y.shape[1])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return detector.requires_grad_(False)


def detect(detector: torch.nn.Linear, features: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """(N, L, D) -> (N, K) p(concept | photo)."""
    with torch.no_grad():
        return torch.cat([noisy_or_log_probs(detector(features[i:i + chunk].float()))[0].exp()
                          for i in range(0, len(features), chunk)])


def imagenet_words(vocabulary_words: set[str]) -> tuple[str, ...]:
    """The word table's caption words that the decoder can say, people left to the detector."""
    table = object_words()
    words = {c.word for c in table.classes.values() if c.category != table.people}
    return tuple(sorted(w for w in words if w in vocabulary_words))


def imagenet_reader(encoder_name: str, words: tuple[str, ...], dim: int) -> ConceptReader:
    """A reader of the ImageNet concepts alone, with the encoder's own head."""
    reader = ConceptReader(dim, 0, len(words))
    head = build_encoder(encoder_name).backbone.model.classifier
    classes = {i: c.word for i, c in object_words().classes.items()}
    reader.set_imagenet_head(head.weight, head.bias, class_concept_matrix(classes, words))
    return reader


def imagenet_scores(reader: ConceptReader, features: torch.Tensor, chunk: int = 256
                    ) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([reader(features[i:i + chunk]).probs
                          for i in range(0, len(features), chunk)])


@dataclass
class DetectorReport:
    word: str
    positives: int
    precision: float
    recall: float
    average_precision: float


def report(probs: torch.Tensor, truth: torch.Tensor, words: Sequence[str],
           threshold: float = 0.5) -> list[DetectorReport]:
    rows = []
    for k, word in enumerate(words):
        y, p = truth[:, k].bool(), probs[:, k]
        said = p >= threshold
        hits = int((said & y).sum())
        order = p.argsort(descending=True)
        ranked = y[order].float()
        precision_at = ranked.cumsum(0) / torch.arange(1, len(ranked) + 1)
        ap = float((precision_at * ranked).sum() / ranked.sum()) if ranked.sum() else float("nan")
        rows.append(DetectorReport(word, int(y.sum()), hits / max(int(said.sum()), 1),
                                   hits / max(int(y.sum()), 1), ap))
    return rows


def quantiles(values: torch.Tensor) -> torch.Tensor:
    return torch.quantile(values.float(), QUANTILES) if len(values) else torch.zeros(len(QUANTILES))


def noise_model(probs: torch.Tensor, truth: torch.Tensor, min_count: int = 10
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantiles (K, Q) of each concept's scores on photos that hold it and that do not; a
    concept with fewer than min_count photos of a side takes the pooled scores of that side."""
    pooled_pos, pooled_neg = quantiles(probs[truth > 0]), quantiles(probs[truth == 0])
    pos, neg = [], []
    for k in range(probs.shape[1]):
        y = truth[:, k] > 0
        pos.append(quantiles(probs[y, k]) if int(y.sum()) >= min_count else pooled_pos)
        neg.append(quantiles(probs[~y, k]) if int((~y).sum()) >= min_count else pooled_neg)
    return torch.stack(pos), torch.stack(neg)


def coco_half(record: ImageRecord, half: str) -> bool:
    """COCO dev's halves by COCO id: "tune" (even) trains small heads, "check" (odd) reports."""
    cocoid = int(Path(record.path).stem)
    return cocoid % 2 == (0 if half == "tune" else 1)


def cached(dataset: CaptionDataset, args: argparse.Namespace) -> FeatureCache:
    return ensure_cache(dataset, args.cache_dir, args.encoder, args.image_size, None, 8, 2)


def build(args: argparse.Namespace) -> dict:
    flickr = load_karpathy(args.data)
    cache = cached(flickr, args)
    train, val = flickr.split("train", "restval"), flickr.split("val")
    words = choose_concepts(train, args.min_photos)
    features = torch.from_numpy(np.ascontiguousarray(cache.features[np.arange(cache.features.shape[0])]))
    index = cache.index
    train_rows = torch.tensor([index[r.path] for r in train])
    val_rows = torch.tensor([index[r.path] for r in val])
    y_train = labels([r.captions for r in train], words)
    y_val = labels([r.captions for r in val], words)
    x_extra, y_extra, check = torch.zeros(0, *features.shape[1:], dtype=features.dtype), None, []
    if args.coco_dev:
        coco = load_karpathy(args.coco_dev)
        coco_cache = cached(coco, args)
        tune = [r for r in coco.images if coco_half(r, "tune")]
        check = [r for r in coco.images if coco_half(r, "check")]
        x_extra = torch.from_numpy(coco_cache.features[np.array(coco_cache.rows([r.path for r in tune]))])
        y_extra = labels([r.captions for r in tune], words)
        x_check = torch.from_numpy(coco_cache.features[np.array(coco_cache.rows([r.path for r in check]))])
        y_check = labels([r.captions for r in check], words)

    def fit(rows: torch.Tensor, seed: int) -> torch.nn.Linear:
        x, y = features[rows], y_train[torch.isin(train_rows, rows).nonzero().squeeze(1)]
        w = torch.ones(len(rows))
        if y_extra is not None:
            x, y = torch.cat([x, x_extra]), torch.cat([y, y_extra])
            w = torch.cat([w, torch.full((len(x_extra),), COCO_WEIGHT)])
        return train_detectors(x, y, w, args.epochs, seed)

    generator = torch.Generator().manual_seed(args.seed)
    fold = torch.randperm(len(train_rows), generator=generator) % 2
    detected = torch.zeros(features.shape[0], len(words))
    for k in (0, 1):  # each training photo scored by detectors that never saw it
        print(f"fold {k + 1}/2 ...", file=sys.stderr)
        detector = fit(train_rows[fold != k], args.seed + k)
        detected[train_rows[fold == k]] = detect(detector, features[train_rows[fold == k]])
    print("all training photos ...", file=sys.stderr)
    detector = fit(train_rows, args.seed + 2)
    others = torch.tensor(sorted(set(range(features.shape[0])) - set(train_rows.tolist())),
                          dtype=torch.long)
    detected[others] = detect(detector, features[others])

    vocabulary = {w for r in flickr.images for c in r.captions for w in c}
    vocabulary |= set(args.extra_words or ())
    image_words = imagenet_words(vocabulary)
    reader = imagenet_reader(args.encoder, image_words, features.shape[2])
    from_imagenet = imagenet_scores(reader, features)
    table = torch.cat([detected, from_imagenet], 1)
    all_words = (*words, *image_words)
    val_truth = torch.cat([y_val, labels([r.captions for r in val], image_words)], 1)
    positive, negative = noise_model(table[val_rows], val_truth)
    result = {
        "concepts": list(words), "imagenet_concepts": list(image_words),
        "detector": {"weight": detector.weight.clone(), "bias": detector.bias.clone()},
        "paths": list(cache.index), "table": table.half(),
        "positive_quantiles": positive, "negative_quantiles": negative,
        "report": {"flickr8k_val": [r.__dict__ for r in report(table[val_rows], val_truth, all_words)]},
    }
    if check:
        full = ConceptReader(features.shape[2], len(words), len(image_words))
        full.detectors.load_state_dict(detector.state_dict())
        full.set_imagenet_head(reader.head_weight, reader.head_bias, reader.class_concepts)
        check_probs = imagenet_scores(full, x_check)
        check_truth = torch.cat([y_check, labels([r.captions for r in check], image_words)], 1)
        result["report"]["coco_dev_check"] = [r.__dict__ for r in report(check_probs, check_truth, all_words)]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("concepts"),
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Flickr8k's Karpathy-format JSON")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--encoder", default="efficientnet_lite0",
                        help="the encoder whose cached grids the detectors read (it needs an "
                             "ImageNet head)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--coco-dev", help="COCO dev's Karpathy JSON: its even-id half trains "
                                           "the detectors too, its odd half is reported")
    parser.add_argument("--extra-words", nargs="*", help="words the decoder will know beyond "
                        "Flickr8k's (ImageNet concepts are kept only for words it can say)")
    parser.add_argument("--extra-words-file", help="the same, one word a line")
    parser.add_argument("--min-photos", type=int, default=40,
                        help="a word gets a detector when this many training photos use it")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.extra_words_file:
        args.extra_words = list(args.extra_words or ()) + Path(args.extra_words_file).read_text().split()
    result = build(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result["report"], indent=1))
    for name, rows in result["report"].items():
        print(f"{name}: " + ", ".join(f"{r['word']} P{r['precision']:.2f}/R{r['recall']:.2f}"
                                      for r in rows[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
