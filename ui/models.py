"""The app's models: which one the sidebar chose, loading it once per process (shared,
read-only, by every session), and one photo through the models at a time."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from captioner import Captioner, CheckpointError
from captioner.inference import DEFAULT_CHECKPOINTS, default_checkpoint
from ui.downloads import ModelName
from ui.support import (FOLDER_MODEL, STARTUP_MODEL, UPLOADED_MODEL, env_checkpoint,
                        env_model_dir, load_uploaded_checkpoint, model_dir_choices,
                        model_dir_path, model_sources)

MODEL_LABELS = {"soft": "Soft attention (shipped)", "hard": "Hard attention (shipped)",
                STARTUP_MODEL: "Start-up checkpoint", FOLDER_MODEL: "Server model folder",
                UPLOADED_MODEL: "Upload a checkpoint"}


class ModelSource(NamedTuple):
    """The model the sidebar chose: a checkpoint file on the server, or an uploaded one."""

    choice: str  # a shipped kind, STARTUP_MODEL, FOLDER_MODEL or UPLOADED_MODEL
    label: str  # how the page and the downloads name it
    path: Path | None = None  # a server file: shipped, start-up, or from the model folder
    upload: tuple[bytes, str] | None = None  # an uploaded checkpoint's bytes and file name

    @property
    def file_name(self) -> str | None:
        """The checkpoint's file name, never its folder: what a download may say of it."""
        if self.upload is not None:
            return Path(self.upload[1]).name
        return self.path.name if self.path is not None else None


class Model(NamedTuple):
    """A loaded model: the shared Captioner and what tells its file apart in caches."""

    captioner: Captioner
    source: ModelSource
    key: tuple  # (the server path or the upload's digest, its version): internal, never shown

    @property
    def name(self) -> ModelName:
        """How downloads name it: the page's label and the file name, never a server path."""
        return ModelName(self.source.label, self.source.file_name)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_captioner(path: str, modified_ns: int) -> Captioner:
    """One Captioner per checkpoint file (and version of it) per process, shared by sessions."""
    return Captioner.from_checkpoint(path)


@st.cache_resource(show_spinner="Loading the uploaded model…", max_entries=3)
def load_uploaded_captioner(digest: str, _data: bytes, _name: str, max_mb: int) -> Captioner:
    """One Captioner per uploaded checkpoint's content (sha256), shared by the sessions that
    upload the same file; only the last few are kept (about 35 MB each)."""
    checkpoint = load_uploaded_checkpoint(_data, _name, max_bytes=max_mb * 2**20)
    # The digest in the name keeps two uploads called alike apart (the encoder cache key).
    return Captioner.from_parts(checkpoint, name=f"{Path(_name).name} (sha256 {digest[:12]})")


@st.cache_resource
def model_lock() -> threading.Lock:
    """One photo through the models at a time, for every session of the process. Streamlit runs
    each session in its own thread; letting them all run torch at once oversubscribes the
    cores (each call already uses all of them) and multiplies the activations held in memory.
    Queued, each caption takes tens of milliseconds: measured in docs/performance.md."""
    return threading.Lock()


def checkpoint_upload_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def model_choice() -> ModelSource:
    """The model radio in the sidebar, with the model folder's list or the checkpoint upload
    when chosen. Defaults to the start-up checkpoint when the server has one."""
    startup, folder = env_checkpoint(), env_model_dir()
    sources = model_sources(bool(startup), folder is not None)
    st.sidebar.header("Model")
    choice = st.sidebar.radio("Model", sources, format_func=MODEL_LABELS.get, key="model_source",
                              index=sources.index(STARTUP_MODEL if startup else "soft"),
                              label_visibility="collapsed")
    if choice == STARTUP_MODEL:
        path = Path(startup).expanduser()
        return ModelSource(choice, f"Checkpoint {path.name}", path)
    if choice == FOLDER_MODEL:
        name = st.sidebar.selectbox("Checkpoint in the model folder", model_dir_choices(folder),
                                    key="model_file", placeholder="No .pt files in the folder",
                                    help="The .pt files the server offers (CAPTIONER_MODEL_DIR).")
        try:
            return ModelSource(choice, f"Checkpoint {name}", model_dir_path(folder, name))
        except CheckpointError:  # none chosen, or the file went away since it was listed
            return ModelSource(choice, MODEL_LABELS[choice])
    if choice == UPLOADED_MODEL:
        limit = checkpoint_upload_mb()
        file = st.sidebar.file_uploader(
            f"Checkpoint (.pt, up to {limit} MB)", type=["pt"], key="model_upload",
            max_upload_size=limit,
            help="A captioner checkpoint saved by training (python -m training.train). Only "
                 "weights and data are read from it, never code.")
        if file is None:
            return ModelSource(choice, MODEL_LABELS[choice])
        return ModelSource(choice, f"Upload {file.name}", upload=(file.getvalue(), file.name))
    return ModelSource(choice, MODEL_LABELS[choice], default_checkpoint(choice))


def open_model(source: ModelSource) -> Model:
    """The cached model of a source with a file or an upload. Raises CheckpointError (or
    OSError) when it cannot be loaded."""
    if source.upload is not None:
        data, name = source.upload
        digest = hashlib.sha256(data).hexdigest()
        return Model(load_uploaded_captioner(digest, data, name, checkpoint_upload_mb()),
                     source, (name, digest))
    modified = source.path.stat().st_mtime_ns if source.path.is_file() else 0
    return Model(load_captioner(str(source.path), modified), source, (str(source.path), modified))


def load_model(source: ModelSource) -> Model:
    """The cached model; stops the page with an error saying what to do when it cannot load."""
    if source.path is None and source.upload is None:
        st.error("Choose a checkpoint from the model folder in the sidebar, or another model."
                 if source.choice == FOLDER_MODEL else
                 "Upload a checkpoint (.pt) in the sidebar, or choose another model.")
        st.stop()
    if source.choice in DEFAULT_CHECKPOINTS and not source.path.exists():
        st.error(f"The shipped {source.choice}-attention model is not installed yet "
                 f"({source.path} is missing). Choose **Upload a checkpoint** in the sidebar "
                 "and upload a trained checkpoint (or start the app with "
                 "CAPTIONER_CHECKPOINT=path or CAPTIONER_MODEL_DIR=folder), or install the "
                 "shipped weights in captioner/weights/.")
        st.stop()
    try:
        return open_model(source)
    except CheckpointError as exc:
        st.error(f"Cannot load the model: {exc}. Choose another model or checkpoint file in "
                 "the sidebar.")
    st.stop()


def describe_model(captioner: Captioner) -> str:
    config = captioner.config
    grid = config.image_size // 32
    # A temperature below 1 sharpens the maps while decoding (docs/attention.md).
    sharpened = (f" · maps sharpened (temperature {config.attention_temperature:g})"
                 if config.attention_temperature != 1.0 else "")
    return (f"{config.attention} attention · {config.encoder} · {grid}×{grid} grid · "
            f"{len(captioner.vocab):,} words{sharpened}")


def available_models(source: ModelSource) -> dict[str, ModelSource]:
    """Compare mode's models: the installed shipped ones, and the chosen one when it is not
    shipped (the start-up checkpoint, a model-folder file or an upload)."""
    models = {MODEL_LABELS[kind]: ModelSource(kind, MODEL_LABELS[kind], default_checkpoint(kind))
              for kind in DEFAULT_CHECKPOINTS if default_checkpoint(kind).exists()}
    if source.choice not in DEFAULT_CHECKPOINTS and (source.path or source.upload):
        models.setdefault(source.label, source)
    return models
