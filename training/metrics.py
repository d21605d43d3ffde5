"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) as pycocoevalcap 1.2 computes them.

The standard protocol (the COCO caption evaluation server) tokenizes every caption with the
Stanford PTB tokenizer and scores with METEOR 1.5, both Java programs shipped inside the
pycocoevalcap wheel. When no `java` is on the PATH, captions are tokenized in pure Python
(`captioner.vocab.tokenize`: lowercase, punctuation dropped), BLEU / ROUGE-L / CIDEr are still
computed, METEOR is None, and `CaptionScores.notes` says why. Numbers from that path are close
to, but not exactly, the standard ones.

SPICE is deliberately not computed: it needs Stanford CoreNLP models downloaded at run time.

`corpus_bleu4` is a fast, Java-free corpus BLEU-4 (pure Python) for per-epoch validation.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

from captioner.vocab import tokenize

NO_JAVA_NOTE = ("METEOR skipped: Java not found; install a Java runtime "
                "(e.g. apt-get install default-jre) to compute it")
PURE_PYTHON_TOKENS_NOTE = ("captions tokenized in pure Python (lowercase, punctuation dropped) "
                           "instead of the PTB tokenizer; scores differ slightly from the standard")
# Ends the PTB tokenizer's input, so a line it silently drops cannot shift captions onto the
# wrong images unnoticed.
_SENTINEL = "captionerendofinputsentinel"


@dataclass(frozen=True)
class CaptionScores:
    """Corpus scores as fractions (BLEU 0.25 = "25.0" in papers); CIDEr as reported (~0..10)."""

    bleu1: float
    bleu2: float
    bleu3: float
    bleu4: float
    meteor: float | None  # None when it could not be computed; `notes` says why
    rouge_l: float
    cider: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, float | None]:
        return {"BLEU-1": self.bleu1, "BLEU-2": self.bleu2, "BLEU-3": self.bleu3,
                "BLEU-4": self.bleu4, "METEOR": self.meteor, "ROUGE-L": self.rouge_l,
                "CIDEr": self.cider}


def java_available() -> bool:
    return shutil.which("java") is not None


def score_captions(predictions: Mapping[Hashable, str],
                   references: Mapping[Hashable, Sequence[str]]) -> CaptionScores:
    """Score one predicted caption per image against that image's reference captions.

    Both mappings are keyed by the same image ids. Raises ValueError when the keys differ or an
    image has no reference, TypeError for a non-string caption or a bare string as an image's
    references. An empty prediction is allowed and simply scores zero.
    """
    _validate(predictions, references)
    keys = list(predictions)
    notes: list[str] = []
    java = java_available()
    res = gts = None
    if java:
        try:
            res, gts = _ptb_tokenize(keys, predictions, references)
        except (OSError, RuntimeError) as error:
            notes.append(f"PTB tokenizer failed ({error}); {PURE_PYTHON_TOKENS_NOTE}")
    else:
        notes.append(PURE_PYTHON_TOKENS_NOTE)
    if res is None or gts is None:
        res, gts = _simple_tokenize(keys, predictions, references)
    # No placeholder is needed for empty hypotheses: pycocoevalcap's BLEU, ROUGE-L, CIDEr and
    # METEOR all accept "" and score it 0 (tests/test_metrics.py checks this).

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its n-gram counts
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge_l, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)

    meteor = None
    if not java:
        notes.append(NO_JAVA_NOTE)
    else:
        try:
            meteor = _meteor(gts, res)
        except (OSError, ValueError) as error:  # java present but unusable, or it died
            notes.append(f"METEOR failed: {error!r}")
    return CaptionScores(*(float(b) for b in bleu), meteor=meteor, rouge_l=float(rouge_l),
                         cider=float(cider), notes=tuple(notes))


def corpus_bleu4(predictions: Mapping[Hashable, str],
                 references: Mapping[Hashable, Sequence[str]]) -> float:
    """Corpus BLEU-4 on `tokenize`d captions: no Java and no subprocess, for per-epoch validation.

    It is pycocoevalcap's (pure-Python) BLEU, so it equals score_captions' BLEU-4 without Java
    and differs from the standard PTB-tokenized number only where the tokenizers differ.
    (nltk's corpus_bleu would count an empty hypothesis as one unmatched n-gram per order.)
    """
    from pycocoevalcap.bleu.bleu import Bleu

    _validate(predictions, references)
    res, gts = _simple_tokenize(list(predictions), predictions, references)
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return float(bleu[3])


def _validate(predictions: Mapping[Hashable, str],
              references: Mapping[Hashable, Sequence[str]]) -> None:
    if not predictions:
        raise ValueError("no predictions to score")
    missing_refs = [k for k in predictions if k not in references]
    missing_preds = [k for k in references if k not in predictions]
    if missing_refs or missing_preds:
        parts = []
        if missing_refs:
            parts.append(f"{len(missing_refs)} predicted image(s) have no references "
                         f"(e.g. {_examples(missing_refs)})")
        if missing_preds:
            parts.append(f"{len(missing_preds)} referenced image(s) have no prediction "
                         f"(e.g. {_examples(missing_preds)})")
        raise ValueError("predictions and references must have the same image ids: "
                         + "; ".join(parts))
    for key, caption in predictions.items():
        if not isinstance(caption, str):
            raise TypeError(f"the prediction for {key!r} must be a string, "
                            f"not {type(caption).__name__}")
    for key, refs in references.items():
        if isinstance(refs, str) or not all(isinstance(r, str) for r in refs):
            raise TypeError(f"the references for {key!r} must be a list of strings")
        if not any(r.strip() for r in refs):
            raise ValueError(f"image {key!r} has no reference caption")


def _examples(keys: list, count: int = 3) -> str:
    return ", ".join(repr(k) for k in keys[:count]) + (", ..." if len(keys) > count else "")


def _simple_tokenize(keys: list, predictions: Mapping[Hashable, str],
                     references: Mapping[Hashable, Sequence[str]]
                     ) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """The scorers' input format: id -> [one hypothesis] and id -> [references], space-joined."""
    res = {k: [" ".join(tokenize(predictions[k]))] for k in keys}
    gts = {k: [" ".join(tokenize(r)) for r in references[k]] for k in keys}
    return res, gts


def _ptb_tokenize(keys: list, predictions: Mapping[Hashable, str],
                  references: Mapping[Hashable, Sequence[str]]
                  ) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """pycocoevalcap's PTB tokenization (same jar, flags and punctuation list).

    Its PTBTokenizer class writes a temp file into site-packages, which fails where that is
    read-only, so the jar is run here directly, reading stdin, with a line-count check.
    """
    from pycocoevalcap.tokenizer import ptbtokenizer

    # One caption per line: every kind of line break inside a caption becomes a space.
    lines = [" ".join(predictions[k].split()) for k in keys]
    lines += [" ".join(r.split()) for k in keys for r in references[k]]
    jar = os.path.join(os.path.dirname(os.path.abspath(ptbtokenizer.__file__)),
                       ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    done = subprocess.run(
        ["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
         "-lowerCase", "-encoding", "utf-8"],
        input="\n".join(lines + [_SENTINEL]) + "\n", capture_output=True, encoding="utf-8",
        errors="replace")
    out = done.stdout.split("\n")
    if done.returncode != 0 or len(out) < len(lines) + 1 or out[len(lines)].strip() != _SENTINEL:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"unexpected PTB tokenizer output: {detail[0]}")
    punctuation = set(ptbtokenizer.PUNCTUATIONS)
    tokenized = iter(" ".join(w for w in line.rstrip().split(" ") if w and w not in punctuation)
                     for line in out[:len(lines)])
    res = {k: [next(tokenized)] for k in keys}
    gts = {k: [next(tokenized) for _ in references[k]] for k in keys}
    return res, gts


def _meteor(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> float:
    """METEOR 1.5 through pycocoevalcap's wrapper; its java process is always ended here."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
        return float(score)
    finally:
        if scorer.lock.locked():  # compute_score failed midway; its __del__ would deadlock
            scorer.lock.release()
        process = scorer.meteor_p
        process.stdin.close()  # EOF ends METEOR's -stdio loop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
