"""Small pure helpers behind the Streamlit app (app.py): no Streamlit, no drawing of our own.

Everything here is a plain function over library objects, so the app file stays UI only and
these pieces are testable without a browser.
"""
from __future__ import annotations

import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image

import captioner
from captioner.checkpoint import MAX_CHECKPOINT_BYTES, Checkpoint, CheckpointError, load_checkpoint
from captioner.grounding import Tag
from captioner.inference import DEFAULT_CHECKPOINTS, Explanation, Timing

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


def shade(p: float) -> str:
    """Green when the model was sure of a word (>= 50%), orange when unsure (>= 20%), red below."""
    return "green" if p >= 0.5 else "orange" if p >= 0.2 else "red"


def unbroken(text: str) -> str:
    """Markdown kept on one line (a word and its percentage); st.markdown(unsafe_allow_html)."""
    return f'<span style="white-space: nowrap">{text}</span>'


def confidence_markdown(words: list[str], probabilities: list[float],
                        tagged: list[str | None] | None = None,
                        tags: Sequence[Tag] = ()) -> str:
    """Each word with its probability beside it as a shaded percentage (see shade). A word a tag
    put there is bold, blue and marked with a pin (Streamlit's bundled icon font: no emoji font
    needed), and beside it stands its label's confidence from the CNN ("CNN 44%", blue), not the
    caption model's probability of the word. Each word stays on one line with its number
    (render with unsafe_allow_html=True)."""
    confidence = {tag.word: tag.confidence for tag in tags}
    tagged = tagged or [None] * len(words)
    parts = []
    for word, p, tag in zip(words, probabilities, tagged):
        if tag:
            number = (f":blue-background[CNN {confidence[tag]:.0%}]" if tag in confidence
                      else f":{shade(p)}-background[{p:.0%}]")
            parts.append(unbroken(f":blue[**{escape_markdown(word)}**&nbsp;{PIN}]&nbsp;{number}"))
        else:
            parts.append(unbroken(f"{escape_markdown(word)}&nbsp;:{shade(p)}-background[{p:.0%}]"))
    return " ".join(parts)


def explanation_markdown(explanation: Explanation) -> str:
    """A typed caption's words with their probabilities; a word the vocabulary lacks is struck
    through and named, with no probability: the model read it as its unknown word, whose
    probability says nothing of the word typed."""
    parts = []
    for word, known, p in zip(explanation.words, explanation.known, explanation.word_probs):
        if known:
            parts.append(unbroken(f"{escape_markdown(word)}&nbsp;:{shade(p)}-background[{p:.0%}]"))
        else:
            parts.append(unbroken(f"~~{escape_markdown(word)}~~&nbsp;:gray[(unknown)]"))
    end = f":gray-background[{explanation.end_prob:.0%}]"
    return " ".join(parts) + " · " + unbroken(f"end of caption&nbsp;{end}")


def unknown_words_line(explanation: Explanation) -> str | None:
    """Which unknown words cost a typed caption, and its score without them: the sum of the
    log-probabilities of its known words and of ending the caption there (the same reading,
    those words' terms left out). None when every word is known."""
    unknown = [w for w, known in zip(explanation.words, explanation.known) if not known]
    if not unknown:
        return None
    known = known_log_prob(explanation)
    names = ", ".join(f"“{escape_markdown(w)}”" for w in dict.fromkeys(unknown))
    cost = "together they cost" if len(set(unknown)) > 1 else "it costs"
    return (f"**Not in the model's vocabulary**: {names}. The model reads each as its unknown "
            f"word; {cost} the caption {known - explanation.log_prob:.2f} of its "
            f"log-probability {explanation.log_prob:.2f}. Without them it scores "
            f"**{known:.2f}**: the sum of the log-probabilities of its known words and of "
            "ending the caption (same reading, the unknown words' terms left out).")


def known_log_prob(explanation: Explanation) -> float:
    """The sum of the log-probabilities of a typed caption's known words and its <end>."""
    def log(p: float) -> float:
        return math.log(p) if p > 0 else float("-inf")
    return sum(log(p) for p, known in zip(explanation.word_probs, explanation.known)
               if known) + log(explanation.end_prob)


def escape_markdown(text: str) -> str:
    """Show text literally in Streamlit markdown (captions come from a model's vocabulary)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~$:])", r"\\\1", text)
