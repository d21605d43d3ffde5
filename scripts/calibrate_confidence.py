"""Fit a model file's caption confidence (captioner/confidence.py) and store it in the file.

    python -m scripts.calibrate_confidence --checkpoint captioner/weights/soft_flickr8k.pt \
        --flickr8k ../shared/data/flickr8k/dataset_flickr8k.json \
        --coco-dev ../shared/data/coco_dev/dataset_coco_dev.json --cache-dir cache \
        --report results/confidence_soft.json [--write]

Captions every photo of COCO dev and Flickr8k val with the shipped decoding defaults, labels
each caption wrong or not (training.objects.caption_errors: it invents someone or something, or
misses the main object), fits a logistic regression on COCO dev's even-id half and Flickr8k
val's first half, chooses the thresholds there (unsure: the lowest p(wrong) whose flagged
captions are at least --precision wrong on the fit half while flagging at most --flickr8k-share
of Flickr8k's; a guess: the same at --guess-precision), and reports precision (flagged captions
that are wrong), recall (wrong captions flagged) and Flickr8k's flagged share on the other
halves. --write stores the fitted model in the checkpoint's metadata (float16, as shipped).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from captioner import Captioner, load_checkpoint, save_checkpoint
from captioner.confidence import FEATURES, ConfidenceModel, Evidence, features
from captioner.options import DEFAULT_OPTIONS
from captioner.inference import resolve_checkpoint
from training.concepts import coco_half
from training.data import load_karpathy
from training.features import ensure_cache
from training.objects import caption_errors

CENTRES = 32


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
                chunk: int = 100) -> tuple[list[list[float]], list[bool], list[str]]:
    """Feature rows, wrong labels and captions of the records."""
    config = captioner.config
    words = config.concepts + config.imagenet_concepts
    shell = ConfidenceModel((0.0,) * len(FEATURES), (1.0,) * len(FEATURES),
                            (0.0,) * len(FEATURES), 0.0, 0.5, 0.5, centres)
    rows, texts = [], []
    side = int(grid.shape[1] ** 0.5)
    for start in range(0, len(records), chunk):
        part = grid[start:start + chunk]
        captions = captioner.caption_features(part, (side, side), DEFAULT_OPTIONS)
        with torch.no_grad():
            probs = captioner.decoder.concept_reader(part).probs
        novelty = shell.novelty(part)
        for caption, p, n in zip(captions, probs.tolist(), novelty.tolist()):
            values, _ = features(Evidence(caption.words, caption.word_probs,
                                          dict(zip(words, p)), n))
            rows.append(values)
            texts.append(caption.text)
    predictions = {r.path: t for r, t in zip(records, texts)}
    references = {r.path: [" ".join(c) for c in r.captions] for r in records}
    errors = caption_errors(predictions, references)
    return rows, [errors[r.path].wrong for r in records], texts


def fit_logistic(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, l2: float = 1e-2
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
    flag = p >= threshold
    coco = ~is_flickr
    return {"precision": float(wrong[flag & coco].mean()) if (flag & coco).any() else float("nan"),
            "recall": float(flag[wrong & coco].mean()) if (wrong & coco).any() else float("nan"),
            "flickr8k_flagged": float(flag[is_flickr].mean()),
            "coco_flagged": int((flag & coco).sum()), "coco_wrong": int((wrong & coco).sum())}


def choose(p: np.ndarray, wrong: np.ndarray, is_flickr: np.ndarray, precision: float,
           flickr_share: float) -> float:
    """The lowest threshold meeting the precision and Flickr8k bounds (else the highest p)."""
    for t in np.unique(np.round(p, 4)):
        s = flagged_stats(p, wrong, is_flickr, t)
        if s["precision"] >= precision and s["flickr8k_flagged"] <= flickr_share:
            return float(t)
    return float(p.max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--flickr8k", required=True)
    parser.add_argument("--coco-dev", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--precision", type=float, default=0.7)
    parser.add_argument("--guess-precision", type=float, default=0.85)
    parser.add_argument("--flickr8k-share", type=float, default=0.15)
    parser.add_argument("--report")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = resolve_checkpoint(args.checkpoint)
    checkpoint = load_checkpoint(path)
    captioner = Captioner.from_parts(checkpoint, name=str(path))
    if captioner.decoder.concept_reader is None:
        print(f"error: {path} reads no concepts; its confidence cannot be fitted", file=sys.stderr)
        return 2
    flickr, coco = load_karpathy(args.flickr8k), load_karpathy(args.coco_dev)
    train = flickr.split("train")
    centres = kmeans_centres(grids(flickr, train, args.cache_dir, captioner.config).mean(1),
                             CENTRES)
    val = flickr.split("val")
    x_f, y_f, t_f = caption_set(captioner, grids(flickr, val, args.cache_dir, captioner.config),
                                val, centres)
    x_c, y_c, t_c = caption_set(captioner, grids(coco, coco.images, args.cache_dir,
                                                 captioner.config), coco.images, centres)
    x = torch.tensor(x_f + x_c)
    wrong = np.array(y_f + y_c)
    is_flickr = np.array([True] * len(x_f) + [False] * len(x_c))
    fit_half = np.array([i % 2 == 0 for i in range(len(x_f))]
                        + [coco_half(r, "tune") for r in coco.images])
    # The two sets weigh the same in the fit, though Flickr8k val has 6x the photos: a user's
    # photos are more like COCO's, whose wrong captions the verdict exists to catch.
    fit_flickr = is_flickr[fit_half]
    weight = torch.where(torch.tensor(fit_flickr), 1.0,
                         float(fit_flickr.sum()) / max(float((~fit_flickr).sum()), 1.0))
    mean, scale, w, b = fit_logistic(x[fit_half], torch.tensor(wrong[fit_half]).float(), weight)
    p = torch.sigmoid(((x - mean) / scale) @ w + b).numpy()
    unsure = choose(p[fit_half], wrong[fit_half], is_flickr[fit_half], args.precision,
                    args.flickr8k_share)
    # A caption more likely wrong than right is never "probably right", whatever the bounds.
    unsure = min(unsure, 0.5)
    guess = max(unsure, choose(p[fit_half], wrong[fit_half], is_flickr[fit_half],
                               args.guess_precision, args.flickr8k_share / 3))
    model = ConfidenceModel(tuple(mean.tolist()), tuple(scale.tolist()), tuple(w.tolist()), b,
                            unsure, guess, centres)
    report = {"checkpoint": str(args.checkpoint), "features": FEATURES,
              "weights": dict(zip(FEATURES, w.tolist())), "unsure": unsure, "guess": guess,
              "fit": flagged_stats(p[fit_half], wrong[fit_half], is_flickr[fit_half], unsure),
              "check": flagged_stats(p[~fit_half], wrong[~fit_half], is_flickr[~fit_half], unsure),
              "check_guess": flagged_stats(p[~fit_half], wrong[~fit_half], is_flickr[~fit_half],
                                           guess),
              "wrong_share": {"flickr8k_val": float(wrong[is_flickr].mean()),
                              "coco_dev": float(wrong[~is_flickr].mean())}}
    print(json.dumps(report, indent=1))
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    if args.write:
        checkpoint.metadata["confidence"] = model.to_dict()
        save_checkpoint(checkpoint, path, half=True)
        print(f"{path}: confidence stored", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
