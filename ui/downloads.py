"""What the page's download buttons hand over: the overlay grid (PNG), the caption with its maps
(JSON), the several-photos table (CSV and JSON), and the table's thumbnails. Pure, no Streamlit.

The JSON files carry a "schema" (name and version) and are described in docs/app.md: a model is
named by its display name and file name, never a path on the server; attention maps are rounded
to 4 decimals, every other number to 3.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import NamedTuple

import numpy as np
from PIL import Image

from captioner.confidence import VERDICTS
from captioner.options import DecodeOptions
from captioner.inference import Caption, Explanation
from captioner.overlay import overlay_grid

from ui.support import fit_within, known_log_prob

CAPTION_SCHEMA = {"name": "captioner-app-caption", "version": 1}
TABLE_SCHEMA = {"name": "captioner-app-table", "version": 2}
MAP_DECIMALS = 4  # attention maps
DECIMALS = 3  # probabilities, scores, log-probabilities, milliseconds
TABLE_COLUMNS = ["file", "caption", "score", "milliseconds", "verdict", "p_wrong", "pinned"]
THUMBNAIL_SIDE = 96  # pixels, the table's thumbnails' longer side


class ModelName(NamedTuple):
    """How a download names a model: never by its path on the server."""

    name: str  # as the page shows it, e.g. "Soft attention (shipped)"
    file: str | None  # the checkpoint's file name, e.g. "soft_flickr8k.pt"

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file}


def rounded(value, decimals: int = DECIMALS):
    """Every float in a JSON-ready value rounded; lists, dicts and other values kept."""
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {key: rounded(item, decimals) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, decimals) for item in value]
    return value


def map_values(alphas: np.ndarray) -> list:
    """(T, h, w) maps as nested lists, to MAP_DECIMALS. In float64 first: a float32 rounded
    to 0.0008 prints as 0.0007999999797903001."""
    return np.asarray(alphas, dtype=np.float64).round(MAP_DECIMALS).tolist()


def decoding_record(options: DecodeOptions, seed: int | None) -> dict:
    """The decoding options the caption was made with, and the seed of sampled hard attention
    (None otherwise): enough to make it again."""
    return {**options.to_dict(), "seed": seed}


def explanation_record(explanation: Explanation) -> dict:
    """A typed caption read by the model: an unknown word's probability is null (the model read
    it as its unknown word), and the log-probability without the unknown words is given."""
    record = rounded({**explanation.to_dict(), "attention": None})
    record["word_probs"] = [round(p, DECIMALS) if known else None
                            for p, known in zip(explanation.word_probs, explanation.known)]
    record["unknown_words"] = [w for w, known in zip(explanation.words, explanation.known)
                               if not known]
    record["log_prob_known_words"] = round(known_log_prob(explanation), DECIMALS)
    record["attention"] = map_values(explanation.alphas)
    return record


def caption_record(caption: Caption, image_name: str, model: ModelName,
                   options: DecodeOptions, seed: int | None = None,
                   explanation: Explanation | None = None) -> dict:
    """Words, scores, alternatives, grounding and attention maps of one caption (the caption
    download), with the typed caption the user asked the model to explain, when there is one."""
    record = rounded({**caption.to_dict(), "attention": None})
    record["attention"] = map_values(caption.alphas)
    record = {"schema": dict(CAPTION_SCHEMA), "image": image_name, "model": model.to_dict(),
              "decoding": rounded(decoding_record(options, seed)), **record}
    if explanation is not None:
        record["explained_caption"] = explanation_record(explanation)
    return record


_SCALAR = r'(?:-?[0-9][0-9.eE+-]*|null|true|false|"(?:[^"\\\n]|\\.)*")'
# An innermost list (of numbers, strings, null or booleans) as json.dumps indents it.
_FLAT_LIST = re.compile(rf"\[(?:\s*{_SCALAR}\s*,)*\s*{_SCALAR}\s*\]")


def dumps(record) -> bytes:
    """JSON, indented, with each innermost list on one line (a row of a map, the words)."""
    text = json.dumps(record, indent=1, ensure_ascii=False)
    return _FLAT_LIST.sub(lambda m: json.dumps(json.loads(m.group(0)), ensure_ascii=False),
                          text).encode("utf-8")


def caption_json(caption: Caption, image_name: str, model: ModelName, options: DecodeOptions,
                 seed: int | None = None, explanation: Explanation | None = None) -> bytes:
    return dumps(caption_record(caption, image_name, model, options, seed, explanation))


def grid_png(photo: Image.Image, caption: Caption, hard: bool, smooth: bool,
             opacity: float, window: bool = False) -> bytes:
    """The photo and one titled overlay per word, as PNG bytes (the grid download)."""
    sheet = overlay_grid(photo, caption.words, caption.alphas, hard=hard, smooth=smooth,
                         opacity=opacity, window=window)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def pinned_words(caption: Caption) -> str:
    """The caption's words a tag placed, comma-separated ("" when none)."""
    return ", ".join(w for w, tag in zip(caption.words, caption.tagged) if tag)


def verdict(caption: Caption) -> str:
    """How far to trust the caption, in the words the page uses: the file's calibrated verdict
    ("probably right", "unsure", "a guess"); for a file without one, "a guess" or nothing."""
    if caption.confidence is not None:
        return caption.confidence.verdict
    return VERDICTS[2] if caption.is_guess else ""


def batch_row(name: str, caption: Caption) -> dict:
    """One row of the several-photos table (and of its CSV and JSON downloads); milliseconds:
    the photo's share of the call that captioned it with others."""
    timing = caption.timing
    total = 0.0 if timing is None else timing.per_photo_ms
    confidence = caption.confidence
    return {"file": name, "caption": caption.text, "score": round(caption.score, DECIMALS),
            "milliseconds": round(total, 1), "verdict": verdict(caption),
            "p_wrong": None if confidence is None else round(confidence.p_wrong, DECIMALS),
            "pinned": pinned_words(caption),
            "word_probs": [round(p, DECIMALS) for p in caption.word_probs]}


def batch_csv(rows: list[dict]) -> bytes:
    """The table as CSV (TABLE_COLUMNS), UTF-8."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def batch_json(rows: list[dict], model: ModelName, options: DecodeOptions,
               seed: int | None = None) -> bytes:
    """The table as JSON: its schema, the model, the decoding options and one record a photo
    (no thumbnails)."""
    photos = [{key: value for key, value in row.items() if key != "thumbnail"} for row in rows]
    return dumps({"schema": dict(TABLE_SCHEMA), "model": model.to_dict(),
                  "decoding": rounded(decoding_record(options, seed)), "photos": photos})


def thumbnail_uri(photo: Image.Image, side: int = THUMBNAIL_SIDE) -> str:
    """A small JPEG of the photo as a data URI (the table's image column)."""
    buffer = io.BytesIO()
    fit_within(photo.convert("RGB"), side).save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
