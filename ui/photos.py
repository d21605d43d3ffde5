"""The photos the page captions: uploads, the camera or an example; each decoded and encoded
once per session."""
from __future__ import annotations

import hashlib

import streamlit as st

from captioner import Captioner, load_image
from ui.models import Model, model_lock
from ui.support import EXAMPLE_PHOTOS, UPLOAD_TYPES, fit_within

LARGE_SIDE = 900  # longest side of the large overlay, in pixels
TILE_SIDE = 320  # longest side of one grid tile


def uploader_key() -> str:
    """The photo uploader's key. A file uploader cannot be emptied by setting its state, so a
    new key (a fresh, empty uploader) clears it: when an example is chosen."""
    return f"upload_{st.session_state.get('upload_round', 0)}"


def example_chosen() -> None:
    """An example replaces the uploads: their file chips go, so the page shows one photo."""
    st.session_state["source"] = "example"
    if st.session_state.get("example"):
        st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1


def uploaded() -> None:
    """New uploads replace the example."""
    st.session_state["source"] = "upload"
    st.session_state["example"] = None


def remember_source(source: str) -> None:
    st.session_state["source"] = source  # the photo source the user touched last wins


def choose_photos(limit_mb: int) -> list[tuple[bytes, str]]:
    """The uploads, the camera's photo or the example the user picked last, as (bytes, name)."""
    upload_column, example_column = st.columns([3, 2])
    files = upload_column.file_uploader(
        f"Upload photos (JPEG, PNG, WebP, BMP or GIF; up to {limit_mb} MB each; several give "
        "a table)", type=list(UPLOAD_TYPES), key=uploader_key(), accept_multiple_files=True,
        max_upload_size=limit_mb, on_change=uploaded)
    example = example_column.segmented_control(
        "…or try an example", list(EXAMPLE_PHOTOS), key="example", on_change=example_chosen)
    # The camera asks the browser for permission as soon as it is shown: only on request.
    snapshot = None
    if upload_column.toggle("Take a photo with the camera", key="use_camera"):
        snapshot = upload_column.camera_input("Camera", key="camera", on_change=remember_source,
                                              args=("camera",))
    source = st.session_state.get("source")
    if snapshot is not None and (source == "camera" or (not files and not example)):
        return [(snapshot.getvalue(), "camera.jpg")]
    if example and (source == "example" or not files):
        path = EXAMPLE_PHOTOS[example]
        return [(path.read_bytes(), path.name)]
    return [(file.getvalue(), file.name) for file in files or []]


def decoded_photo(data: bytes, name: str):
    """(sha256, the upright RGB photo, its large and tile sizes); decoded once per distinct file
    per session. Raises ImageError."""
    digest = hashlib.sha256(data).hexdigest()
    saved = st.session_state.get("photo")
    if saved is None or saved[0] != digest:
        photo = load_image(data, name)
        saved = (digest, photo, fit_within(photo, LARGE_SIDE), fit_within(photo, TILE_SIDE))
        st.session_state["photo"] = saved
    return saved


def encoded_photo(captioner: Captioner, key: tuple, photo):
    """The photo through the model's encoder, once per photo and model: the caption and the
    explained caption both start from it."""
    saved = st.session_state.get("encoded")
    if saved is None or saved[0] != key:
        with model_lock():
            saved = (key, captioner.encode([photo]))
        st.session_state["encoded"] = saved
    return saved[1]


def photo_key(digest: str, model: Model) -> tuple:
    """What tells one photo on one model apart in the session's caches."""
    return (digest, *model.key)
