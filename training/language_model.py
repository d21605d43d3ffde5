"""Train the caption language model that shallow fusion adds to a captioner (text only).

    python -m training.language_model --flickr ../shared/data/flickr8k/dataset_flickr8k.json \
        --coco-text ../shared/data/coco_text/captions.jsonl --out runs/language/coco_flickr.pt

Text: Flickr8k's training captions and COCO caption text (captions.jsonl: one JSON object a
line with a "caption"); a seeded 5% of the COCO lines and Flickr8k's val captions are held out
to pick the best epoch by perplexity. The vocabulary is every word seen --min-count times.
The best epoch is written (float16 with --half) with its vocabulary and provenance.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from captioner.checkpoint import CheckpointError
from captioner.flags import positive_int
from captioner.language_model import (LanguageModel, LanguageModelConfig, LanguageModelFile,
                                      save_language_model)
from captioner.vocab import Vocabulary, tokenize

from .commands import prog
from .data import DatasetError, load_karpathy

MAX_WORDS = 30  # longer captions are cut: the captioner never writes more than 50 words


def read_coco_text(path: str) -> list[list[str]]:
    """Tokenised captions of a JSON-lines file; a bad line is an error naming it."""
    captions = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["caption"]
        except (ValueError, KeyError, TypeError):
            raise DatasetError(f"{path}, line {number}: not a JSON object with a "
                               "\"caption\"") from None
        words = tokenize(str(text))
        if words:
            captions.append(words)
    return captions


def split_text(flickr_json: str, coco_text: str, seed: int
               ) -> tuple[list[list[str]], list[list[str]]]:
    """(training captions, held-out captions)."""
    flickr = load_karpathy(flickr_json)
    train = [list(c) for r in flickr.split("train") for c in r.captions]
    held_out = [list(c) for r in flickr.split("val") for c in r.captions]
    coco = read_coco_text(coco_text)
    random.Random(seed).shuffle(coco)
    cut = len(coco) // 20
    return train + coco[cut:], held_out + coco[:cut]


def batches(captions: list[list[int]], batch_size: int, shuffle: random.Random | None):
    order = list(range(len(captions)))
    if shuffle is not None:
        shuffle.shuffle(order)
    for start in range(0, len(order), batch_size):
        rows = [captions[i] for i in order[start:start + batch_size]]
        width = max(map(len, rows))
        yield torch.tensor([row + [Vocabulary.pad_id] * (width - len(row)) for row in rows])


def loss_of(model: LanguageModel, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of every real next word, and how many there are."""
    logits = model(batch[:, :-1])
    targets = batch[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=Vocabulary.pad_id, reduction="sum")
    return loss, int((targets != Vocabulary.pad_id).sum())


def perplexity(model: LanguageModel, captions: list[list[int]], batch_size: int) -> float:
    model.eval()
    total, words = 0.0, 0
    with torch.inference_mode():
        for batch in batches(captions, batch_size, None):
            loss, n = loss_of(model, batch)
            total, words = total + float(loss), words + n
    return math.exp(total / max(1, words))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=prog("language_model"),
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--flickr", required=True, help="Flickr8k Karpathy-format JSON")
    parser.add_argument("--coco-text", required=True, help="COCO captions, JSON lines")
    parser.add_argument("--out", required=True)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    parser.add_argument("--threads", type=positive_int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        train_text, held_out_text = split_text(args.flickr, args.coco_text, args.seed)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    vocab = Vocabulary.build(train_text, args.min_count)
    train = [vocab.encode(c[:MAX_WORDS]) for c in train_text]
    held_out = [vocab.encode(c[:MAX_WORDS]) for c in held_out_text]
    model = LanguageModel(LanguageModelConfig(len(vocab), args.embed_dim, args.hidden_dim))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"{len(train):,} training captions, {len(held_out):,} held out, {len(vocab):,} words",
          flush=True)
    shuffle, best = random.Random(args.seed), math.inf
    for epoch in range(1, args.epochs + 1):
        model.train()
        started = time.perf_counter()
        for batch in batches(train, args.batch_size, shuffle):
            loss, words = loss_of(model, batch)
            optimizer.zero_grad()
            (loss / words).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        score = perplexity(model, held_out, 256)
        print(f"epoch {epoch}: held-out perplexity {score:.2f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        if score < best:
            best = score
            metadata = {"epoch": epoch, "held_out_perplexity": round(score, 3),
                        "text": ["Flickr8k train captions", "COCO caption text (coco_text)"],
                        "training_captions": len(train)}
            try:
                save_language_model(LanguageModelFile(model, vocab, metadata), args.out,
                                    half=args.half)
            except (OSError, CheckpointError) as exc:
                print(f"error: {args.out}: {exc}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
