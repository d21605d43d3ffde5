"""Fit a model file's caption confidence (captioner/confidence.py) and store it in the file.

    python -m scripts.calibrate_confidence --checkpoint captioner/weights/soft_flickr8k.pt \
        --flickr8k ../shared/data/flickr8k/dataset_flickr8k.json \
        --coco-dev ../shared/data/coco_dev/dataset_coco_dev.json --cache-dir cache \
        --report results/concepts/confidence_soft.json [--write]

Captions every photo of COCO dev and Flickr8k val once, with the shipped decoding defaults, and
labels each caption wrong or not (training.objects.caption_errors: it invents someone or
something, or misses the main object). The logistic regression over every feature of
captioner.confidence.FEATURES (L2 --l2) is fitted on COCO dev's odd-id half and all of Flickr8k
val: photos the concept detectors never saw. The detectors were trained on COCO dev's even-id
half (training.concepts --coco-dev), so there they are sure of what the captions say, and a
model fitted on that half learns concept features that do not hold on a user's photo.

Thresholds, chosen on the same photos: unsure, the lowest p(wrong) whose flagged captions are
at least --precision wrong on COCO while flagging at most --flickr8k-share of Flickr8k's (never
above 0.5: a caption more likely wrong than right is never "probably right"); a guess, the same
at --guess-precision and a third of the share. Precision (flagged COCO captions that are
wrong), recall (wrong COCO captions flagged) and Flickr8k's flagged share are reported by
--repeats times repeated --folds-fold cross-validation over those photos (folds stratified by
set; the model and both thresholds refitted on the other folds each time), so every number is
on photos that chose neither. The even half is reported too, labelled as seen by the
detectors: it is no check. --write stores the model fitted on all the pool in the checkpoint's
metadata (float16, as shipped).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from captioner import Captioner, load_checkpoint, save_checkpoint
from captioner.confidence import FEATURES, NEVER_RIGHT_FROM, ConfidenceModel, Evidence, read
from captioner.options import DEFAULT_OPTIONS
from captioner.inference import resolve_checkpoint
from training.concepts import coco_half
from training.data import load_karpathy
from training.features import ensure_cache
from training.objects import caption_errors

CENTRES = 32
# What the verdict is for (docs/app.md): flagged COCO captions mostly wrong, most wrong ones
# flagged, and few of Flickr8k's (the photos the model knows) flagged.
TARGETS = {"precision": 0.70, "recall": 0.60, "flickr8k_flagged": 0.15}


@dataclass(frozen=True)
class Bounds:
    """What the thresholds must meet on the photos that choose them."""

    precision: float = 0.7  # unsure: flagged COCO captions that are wrong, at least
    guess_precision: float = 0.85  # a guess: the same, at least
    flickr8k_share: float = 0.15  # unsure: Flickr8k val captions flagged, at most (a guess: 1/3)


class Decoded(NamedTuple):
    """One set's captions, decoded once: every feature, and whether each is wrong."""

    values: np.ndarray  # (N, len(FEATURES)), columns in FEATURES' order
    wrong: np.ndarray  # (N,) bool
    texts: list[str]


class Fitted(NamedTuple):
    mean: torch.Tensor
    scale: torch.Tensor
    weights: torch.Tensor
    bias: float
    unsure: float
    guess: float

    def p_wrong(self, x: np.ndarray) -> np.ndarray:
        z = (torch.as_tensor(x, dtype=torch.float32) - self.mean) / self.scale
        return torch.sigmoid(z @ self.weights + self.bias).numpy()


def kmeans_centres(means: torch.Tensor, k: int, seed: int = 0, rounds: int = 25) -> torch.Tensor:
    """Unit-length centres of unit-length vectors (spherical k-means)."""
    points = torch.nn.functional.normalize(means, dim=1)
    generator = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(len(points), generator=generator)[:k]].clone()
    for _ in range(rounds):
        nearest = (points @ centres.T).argmax(1)
        for c in range(k):
            members = points[nearest == c]
            if len(members):
                centres[c] = torch.nn.functional.normalize(members.mean(0), dim=0)
    return centres


def grids(dataset, records, cache_dir, config) -> torch.Tensor:
    cache = ensure_cache(dataset, cache_dir, config.encoder, config.image_size)
    return torch.from_numpy(np.ascontiguousarray(
        cache.features[np.array(cache.rows([r.path for r in records]))])).float()


def caption_set(captioner: Captioner, grid: torch.Tensor, records, centres: torch.Tensor,
                chunk: int = 100) -> Decoded:
    """Caption the records once; every feature of every caption, and its wrong label."""
    config = captioner.config
    shell = ConfidenceModel((), (), (), 0.0, 0.5, 0.5, centres, ())  # novelty only
    rows, texts = [], []
    side = int(grid.shape[1] ** 0.5)
    for start in range(0, len(records), chunk):
        part = grid[start:start + chunk]
        captions = captioner.caption_features(part, (side, side), DEFAULT_OPTIONS)
        with torch.no_grad():
            probs = captioner.decoder.concept_reader(part).probs
        novelty = shell.novelty(part)
        for caption, p, n in zip(captions, probs.tolist(), novelty.tolist()):
            values = read(Evidence.of(caption.words, caption.word_probs, config.concepts,
                                      config.imagenet_concepts, p, n)).values
            rows.append([values[f] for f in FEATURES])
            texts.append(caption.text)
    predictions = {r.path: t for r, t in zip(records, texts)}
    references = {r.path: [" ".join(c) for c in r.captions] for r in records}
    errors = caption_errors(predictions, references)
    return Decoded(np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES)),
                   np.array([errors[r.path].wrong for r in records], dtype=bool), texts)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, l2: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Weighted logistic regression on standardised features (LBFGS, L2)."""
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / scale
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, weight=weight)
                + l2 * (w ** 2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    return mean, scale, w.detach(), float(b.detach())


def flagged_stats(p: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray, threshold: float
                  ) -> dict:
    return flag_stats(p >= threshold, wrong, is_flickr)


def flag_stats(flag: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray) -> dict:
    coco = ~is_flickr
    return {"precision": float(wrong[flag & coco].mean()) if (flag & coco).any() else float("nan"),
            "recall": float(flag[wrong & coco].mean()) if (wrong & coco).any() else float("nan"),
            "flickr8k_flagged": float(flag[is_flickr].mean()) if is_flickr.any() else float("nan"),
            "coco_flagged": int((flag & coco).sum()), "coco_wrong": int((wrong & coco).sum())}


def choose(p: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray, precision: float,
           flickr_share: float) -> float:
    """The lowest threshold meeting the precision and Flickr8k bounds (else the highest p)."""
    for t in np.unique(np.round(p, 4)):
        s = flagged_stats(p, wrong, is_flickr, t)
        if s["precision"] >= precision and s["flickr8k_flagged"] <= flickr_share:
            return float(t)
    return float(p.max())


def fit(x: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray, bounds: Bounds, l2: float
        ) -> Fitted:
    """The model and its two thresholds, all chosen on these rows."""
    # The two sets weigh the same in the fit, though Flickr8k val has many more photos: a
    # user's photos are more like COCO's, whose wrong captions the verdict exists to catch.
    weight = torch.where(torch.tensor(is_flickr), 1.0,
                         float(is_flickr.sum()) / max(float((~is_flickr).sum()), 1.0))
    mean, scale, w, b = fit_logistic(torch.tensor(x, dtype=torch.float32),
                                     torch.tensor(wrong, dtype=torch.float32), weight, l2)
    fitted = Fitted(mean, scale, w, b, 0.0, 0.0)
    p = fitted.p_wrong(x)
    # A caption more likely wrong than right is never "probably right", whatever the bounds.
    unsure = min(choose(p, wrong, is_flickr, bounds.precision, bounds.flickr8k_share),
                 NEVER_RIGHT_FROM)
    guess = max(unsure, choose(p, wrong, is_flickr, bounds.guess_precision,
                               bounds.flickr8k_share / 3))
    return fitted._replace(unsure=unsure, guess=guess)


def cross_validate(x: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray, bounds: Bounds,
                   l2: float, folds: int = 10, repeats: int = 3) -> dict:
    """Repeated k-fold: each caption flagged by a model and thresholds fitted without it; the
    measures over all held-out flags, per repeat and averaged over repeats."""
    per_repeat = {"unsure": [], "guess": []}
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        fold = np.empty(len(wrong), dtype=int)
        for group in (~is_flickr, is_flickr):  # every fold gets its share of each set
            rows = np.flatnonzero(group)
            rng.shuffle(rows)
            fold[rows] = np.arange(len(rows)) % folds
        unsure = np.zeros(len(wrong), dtype=bool)
        guess = np.zeros(len(wrong), dtype=bool)
        for k in range(folds):
            train, held = fold != k, fold == k
            fitted = fit(x[train], wrong[train], is_flickr[train], bounds, l2)
            p = fitted.p_wrong(x[held])
            unsure[held] = p >= fitted.unsure
            guess[held] = p >= fitted.guess
        per_repeat["unsure"].append(flag_stats(unsure, wrong, is_flickr))
        per_repeat["guess"].append(flag_stats(guess, wrong, is_flickr))
    return {"folds": folds, "repeats": repeats,
            **{level: {key: float(np.nanmean([r[key] for r in runs])) for key in runs[0]}
               for level, runs in per_repeat.items()},
            "per_repeat": per_repeat}


def against_targets(stats: dict) -> dict:
    """Each TARGETS measure: its bound, the value, and whether it is met."""
    def met(key: str, bound: float) -> bool:
        return stats[key] <= bound if key == "flickr8k_flagged" else stats[key] >= bound

    return {key: {"target": ("<= " if key == "flickr8k_flagged" else ">= ") + str(bound),
                  "cross_validated": stats[key], "met": bool(met(key, bound))}
            for key, bound in TARGETS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--flickr8k", required=True)
    parser.add_argument("--coco-dev", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--precision", type=float, default=Bounds.precision)
    parser.add_argument("--guess-precision", type=float, default=Bounds.guess_precision)
    parser.add_argument("--flickr8k-share", type=float, default=Bounds.flickr8k_share)
    parser.add_argument("--l2", type=float, default=1.0,
                        help="L2 penalty on the standardised weights")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bounds = Bounds(args.precision, args.guess_precision, args.flickr8k_share)
    path = resolve_checkpoint(args.checkpoint)
    checkpoint = load_checkpoint(path)
    captioner = Captioner.from_parts(checkpoint, name=str(path))
    if captioner.decoder.concept_reader is None:
        print(f"error: {path} reads no concepts; its confidence cannot be fitted", file=sys.stderr)
        return 2
    flickr, coco = load_karpathy(args.flickr8k), load_karpathy(args.coco_dev)
    config = captioner.config
    centres = kmeans_centres(grids(flickr, flickr.split("train"), args.cache_dir, config).mean(1),
                             CENTRES)
    val = flickr.split("val")
    f = caption_set(captioner, grids(flickr, val, args.cache_dir, config), val, centres)
    c = caption_set(captioner, grids(coco, coco.images, args.cache_dir, config), coco.images,
                    centres)
    odd = np.array([coco_half(r, "check") for r in coco.images])  # never seen by the detectors
    x = np.concatenate([c.values[odd], f.values])
    wrong = np.concatenate([c.wrong[odd], f.wrong])
    is_flickr = np.array([False] * int(odd.sum()) + [True] * len(f.wrong))
    fitted = fit(x, wrong, is_flickr, bounds, args.l2)
    model = ConfidenceModel(tuple(fitted.mean.tolist()), tuple(fitted.scale.tolist()),
                            tuple(fitted.weights.tolist()), fitted.bias, fitted.unsure,
                            fitted.guess, centres, FEATURES)
    held_out = cross_validate(x, wrong, is_flickr, bounds, args.l2, args.folds, args.repeats)
    even = ~odd
    p_even = fitted.p_wrong(c.values[even])

    def on_even(threshold: float) -> dict:
        stats = flagged_stats(p_even, c.wrong[even], np.zeros(int(even.sum()), bool), threshold)
        return {k: v for k, v in stats.items() if k != "flickr8k_flagged"}

    report = {
        "checkpoint": str(args.checkpoint),
        "fitted_on": {"coco_dev_odd_ids": int(odd.sum()), "flickr8k_val": len(f.wrong),
                      "l2": args.l2, "bounds": asdict(bounds)},
        "features": list(FEATURES),
        "weights": dict(zip(FEATURES, fitted.weights.tolist())), "bias": fitted.bias,
        "unsure": fitted.unsure, "guess": fitted.guess,
        "cross_validated": held_out,
        "targets": against_targets(held_out["unsure"]),
        "fit_in_sample": flagged_stats(fitted.p_wrong(x), wrong, is_flickr, fitted.unsure),
        "coco_dev_even_ids_seen_by_the_detectors": {
            "note": "the concept detectors were trained on these photos; not a check",
            "unsure": on_even(fitted.unsure), "guess": on_even(fitted.guess)},
        # How far the fitted probability spreads over the photos it was fitted on (L2 draws it
        # towards the base rate), and why the even half is no check: the detectors trained on
        # it are sure there of what the caption leaves out.
        "p_wrong_percentiles": dict(zip(("min", "5", "50", "95", "max"), np.percentile(
            fitted.p_wrong(x), [0, 5, 50, 95, 100]).round(4).tolist())),
        "surest_unnamed_at_least_0.98": {
            half: float((c.values[rows, FEATURES.index("surest_unnamed")] >= 0.98).mean())
            for half, rows in (("coco_dev_even_ids", even), ("coco_dev_odd_ids", odd))},
        "wrong_share": {"flickr8k_val": float(f.wrong.mean()),
                        "coco_dev_odd_ids": float(c.wrong[odd].mean()),
                        "coco_dev_even_ids": float(c.wrong[even].mean())},
    }
    print(json.dumps({**report, "cross_validated": {k: held_out[k] for k in ("unsure", "guess")}},
                     indent=1))
    if args.report:
        with open(args.report, "w") as out:
            json.dump(report, out, indent=1)
    if args.write:
        checkpoint.metadata["confidence"] = model.to_dict()
        save_checkpoint(checkpoint, path, half=True)
        print(f"{path}: confidence stored", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
