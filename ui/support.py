"""Small pure helpers behind the Streamlit app (app.py): no Streamlit, no drawing of our own.

Everything here is a plain function over library objects, so the app file stays UI only and
these pieces are testable without a browser.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Mapping

from PIL import Image

import captioner
from captioner.checkpoint import MAX_CHECKPOINT_BYTES, Checkpoint, CheckpointError, load_checkpoint
from captioner.inference import DEFAULT_CHECKPOINTS, Caption, Explanation, Timing
from captioner.overlay import overlay_grid

# Set CAPTIONER_CHECKPOINT to a checkpoint file to make it the app's default model.
CHECKPOINT_ENV = "CAPTIONER_CHECKPOINT"
# Set CAPTIONER_MODEL_DIR to a folder of .pt files on the server to offer them by name: a
# visitor picks one from the list and never types a path, so no other server file is reachable.
MODEL_DIR_ENV = "CAPTIONER_MODEL_DIR"
# The example photos ship with the library (tests and benchmarks use them too).
EXAMPLES_DIR = Path(captioner.__file__).resolve().parent / "examples"
# Label shown in the app -> example photo (see examples/LICENSES.md).
EXAMPLE_PHOTOS = {
    "Cat": EXAMPLES_DIR / "chelsea.jpg",
    "Coffee": EXAMPLES_DIR / "coffee.jpg",
    "Astronaut": EXAMPLES_DIR / "astronaut.jpg",
    "Rocket": EXAMPLES_DIR / "rocket.jpg",
}
# What the uploader accepts (GIF and WebP: the first frame is captioned).
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
# Where the app's model comes from, besides the shipped ones: the operator's start-up file
# (CAPTIONER_CHECKPOINT), a file of the server's model folder (CAPTIONER_MODEL_DIR) picked by
# name, or a checkpoint the visitor uploads. Never a path typed into the page.
STARTUP_MODEL, FOLDER_MODEL, UPLOADED_MODEL = "startup", "folder", "upload"


def model_sources(startup: bool, model_dir: bool) -> tuple[str, ...]:
    """The model choices the sidebar offers: the shipped models, the start-up checkpoint and
    the model folder when the server was started with them, and an upload."""
    return (*DEFAULT_CHECKPOINTS, *((STARTUP_MODEL,) if startup else ()),
            *((FOLDER_MODEL,) if model_dir else ()), UPLOADED_MODEL)


def env_checkpoint(environ: Mapping[str, str] = os.environ) -> str:
    """The checkpoint path from CAPTIONER_CHECKPOINT, or "" when it is not set."""
    return environ.get(CHECKPOINT_ENV, "").strip()


def env_model_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder named by CAPTIONER_MODEL_DIR, or None when it is not set."""
    folder = environ.get(MODEL_DIR_ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def model_dir_choices(folder: str | os.PathLike) -> list[str]:
    """The checkpoint names a visitor may pick, sorted: regular `.pt` files directly in the
    folder. Subfolders, FIFOs, devices and symlinks that point outside the folder (or nowhere)
    are left out; a missing or unreadable folder offers nothing."""
    try:
        root = Path(folder).resolve(strict=True)
        entries = list(os.scandir(root))
    except OSError:
        return []
    names = []
    for entry in entries:
        if not entry.name.endswith(".pt"):
            continue
        try:
            target = Path(entry.path).resolve(strict=True)
            regular = stat.S_ISREG(os.stat(target).st_mode)
        except (OSError, RuntimeError):  # a broken link or a symlink loop
            continue
        if regular and root in target.parents:
            names.append(entry.name)
    return sorted(names)


def model_dir_path(folder: str | os.PathLike, name: str) -> Path:
    """The file for a name from model_dir_choices(folder). Anything else - "../x.pt", an
    absolute path, a name with a slash, a file added to no list - is refused, since the name
    comes from the visitor's browser and may have been forged."""
    if name not in model_dir_choices(folder):
        raise CheckpointError("the chosen model is not one of the files in the model folder")
    return Path(folder) / name


def load_uploaded_checkpoint(data: bytes, upload_name: str,
                             max_bytes: int = MAX_CHECKPOINT_BYTES) -> Checkpoint:
    """An uploaded checkpoint's bytes -> Checkpoint, read by load_checkpoint (weights only,
    pickled code refused) from a private temporary file that is removed at once. Messages name
    the upload, never the server's temporary path."""
    shown = Path(upload_name).name or "uploaded checkpoint"
    if len(data) > max_bytes:
        raise CheckpointError(f"{shown}: is {len(data):,} bytes, over the {max_bytes:,}-byte "
                              "limit for a checkpoint")
    fd, temporary = tempfile.mkstemp(prefix="upload-", suffix=".pt")  # mode 0600: private
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        return load_checkpoint(temporary, max_bytes=max_bytes, name=shown)
    finally:
        os.unlink(temporary)


def fit_within(photo: Image.Image, max_side: int) -> Image.Image:
    """The photo scaled down (never up) so its longer side is at most max_side; same aspect."""
    scale = max_side / max(photo.size)
    if scale >= 1:
        return photo
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    return photo.resize(size, Image.BICUBIC, reducing_gap=3.0)


def grid_png(photo: Image.Image, caption: Caption, hard: bool, smooth: bool,
             opacity: float, window: bool = False) -> bytes:
    """The photo and one titled overlay per word, as PNG bytes (the grid download)."""
    sheet = overlay_grid(photo, caption.words, caption.alphas, hard=hard, smooth=smooth,
                         opacity=opacity, window=window)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def caption_json(caption: Caption, image_name: str, checkpoint: str,
                 explanation: Explanation | None = None) -> bytes:
    """Words, scores, alternatives and attention maps as JSON (the caption download), with the
    typed caption the user asked the model to explain, when there is one."""
    record = {"image": image_name, "checkpoint": checkpoint, **caption.to_dict()}
    if explanation is not None:
        record["explained_caption"] = explanation.to_dict()
    return json.dumps(record, indent=1).encode("utf-8")


def batch_row(name: str, caption: Caption) -> dict:
    """One row of the many-photos table (and of its CSV and JSON downloads); milliseconds:
    the photo's share of the call that captioned it with others."""
    timing = caption.timing
    total = 0.0 if timing is None else timing.per_photo_ms
    return {"file": name, "caption": caption.text, "score": round(caption.score, 4),
            "milliseconds": round(total, 1),
            "word_probs": [round(p, 4) for p in caption.word_probs]}


def batch_csv(rows: list[dict]) -> bytes:
    """The table as CSV (file, caption, score, milliseconds), UTF-8."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["file", "caption", "score", "milliseconds"],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def download_stem(image_name: str) -> str:
    """A safe file-name stem for downloads: "My photo (1).JPG" -> "My_photo_1"."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(image_name).stem).strip("._")
    return stem[:80] or "photo"


def format_timing(timing: Timing | None) -> str:
    if timing is None:
        return ""
    return (f"encoder {timing.encoder_ms:.0f} ms · decoder {timing.decoder_ms:.0f} ms · "
            f"preprocessing {timing.preprocess_ms:.0f} ms")


PIN = ":material/push_pin:"  # marks a word a tag placed


def confidence_markdown(words: list[str], probabilities: list[float],
                        tagged: list[str | None] | None = None) -> str:
    """Each word with its probability under it as a shaded percentage: green when the model was
    sure (>= 50%), orange when unsure (>= 20%), red below. A word a tag put there is bold,
    blue and marked with a pin (Streamlit's bundled icon font: no emoji font needed)."""
    def shade(p: float) -> str:
        return "green" if p >= 0.5 else "orange" if p >= 0.2 else "red"

    def word_text(word: str, tag: str | None) -> str:
        return f":blue[**{escape_markdown(word)}** {PIN}]" if tag else escape_markdown(word)
    tagged = tagged or [None] * len(words)
    return " ".join(f"{word_text(word, tag)}&nbsp;:{shade(p)}-background[{p:.0%}]"
                    for word, p, tag in zip(words, probabilities, tagged))


def explanation_markdown(explanation: Explanation) -> str:
    """A typed caption's words with their probabilities; a word the vocabulary lacks is struck
    through and named, since the model read it as <unk>."""
    parts = []
    for word, known, p in zip(explanation.words, explanation.known, explanation.word_probs):
        shown = escape_markdown(word) if known else f"~~{escape_markdown(word)}~~ (unknown)"
        shade = "green" if p >= 0.5 else "orange" if p >= 0.2 else "red"
        parts.append(f"{shown}&nbsp;:{shade}-background[{p:.0%}]")
    return " ".join(parts) + f" · end of caption :gray-background[{explanation.end_prob:.0%}]"


def grounding_markdown(caption: Caption) -> str:
    """Which of the CNN's labels guided the caption, one line per tag."""
    if not caption.tags:
        return ("No label was sure enough to guide the caption: its words are the caption "
                "model's own.")
    lines = []
    for tag in caption.tags:
        placed = "placed" if tag.word in caption.tagged else "asked for, but not placed"
        lines.append(f"- :blue[{PIN}] **{escape_markdown(tag.word)}** ({tag.confidence:.0%} sure; "
                     f"{placed}) from " + ", ".join(escape_markdown(label)
                                                   for label in tag.labels))
    return "**Guided the caption**:\n" + "\n".join(lines)


def escape_markdown(text: str) -> str:
    """Show text literally in Streamlit markdown (captions come from a model's vocabulary)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$:])", r"\\\1", text)
