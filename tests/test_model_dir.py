"""The app's model folder and checkpoint uploads: a visitor reaches only the listed files, and
an upload is read safely from a private temporary file."""
import os
import pickle
import stat
from pathlib import Path

import pytest

from captioner import CheckpointError
from ui import support
from ui.support import (MODEL_DIR_ENV, env_model_dir, load_uploaded_checkpoint,
                        model_dir_choices, model_dir_path)

from conftest import write_checkpoint


def test_env_model_dir():
    assert env_model_dir({}) is None
    assert env_model_dir({MODEL_DIR_ENV: "  "}) is None
    assert env_model_dir({MODEL_DIR_ENV: " /srv/models "}) == Path("/srv/models")


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """b.pt and a.pt (real files), linked.pt (a symlink to a.pt): listed. Left out: a text
    file, a subfolder (even one named .pt) and the .pt inside it, a FIFO, a symlink to a file
    outside the folder, a broken symlink."""
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "dir.pt").mkdir()
    for name in ("b.pt", "a.pt", "notes.txt", "sub/inner.pt"):
        (folder / name).write_bytes(b"weights")
    (folder / "linked.pt").symlink_to(folder / "a.pt")
    (tmp_path / "secret.pt").write_bytes(b"not for visitors")
    (folder / "escape.pt").symlink_to(tmp_path / "secret.pt")
    (folder / "broken.pt").symlink_to(folder / "gone.pt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.pt")
    return folder


def test_model_dir_lists_only_regular_pt_files_inside_it(model_dir, tmp_path):
    assert model_dir_choices(model_dir) == ["a.pt", "b.pt", "linked.pt"]
    assert model_dir_choices(tmp_path / "nowhere") == []
    assert model_dir_choices(model_dir / "a.pt") == []  # a file, not a folder


def test_model_dir_path_resolves_only_listed_names(model_dir, tmp_path):
    assert model_dir_path(model_dir, "b.pt") == model_dir / "b.pt"
    assert model_dir_path(model_dir, "linked.pt") == model_dir / "linked.pt"
    for forged in ["../secret.pt", str(tmp_path / "secret.pt"), "sub/inner.pt", "escape.pt",
                   "pipe.pt", "broken.pt", "dir.pt", "notes.txt", "", ".", "./a.pt",
                   "a.pt/", "A.PT"]:
        with pytest.raises(CheckpointError, match="not one of the files in the model folder"):
            model_dir_path(model_dir, forged)
    with pytest.raises(CheckpointError):
        model_dir_path(tmp_path / "nowhere", "a.pt")


def test_an_upload_loads_from_a_private_file_that_is_removed(tmp_path, vocab, monkeypatch):
    data = write_checkpoint(tmp_path / "model.pt", vocab).read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(support.tempfile, "tempdir", str(scratch))
    modes = []
    real_load = support.load_checkpoint

    def spy(path, **kwargs):
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        return real_load(path, **kwargs)
    monkeypatch.setattr(support, "load_checkpoint", spy)
    checkpoint = load_uploaded_checkpoint(data, "my model.pt")
    assert checkpoint.vocab == vocab
    assert modes == [0o600]
    assert list(scratch.iterdir()) == []


def test_a_bad_upload_is_refused_naming_the_upload_only(tmp_path, vocab, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(support.tempfile, "tempdir", str(scratch))
    with pytest.raises(CheckpointError, match=r"^model\.pt: not a readable PyTorch checkpoint"):
        load_uploaded_checkpoint(b"\x00garbage" * 10, "C:\\fakepath/model.pt")
    with pytest.raises(CheckpointError, match=r"^evil\.pt: "):
        load_uploaded_checkpoint(pickle.dumps(ValueError("x")), "evil.pt")
    data = write_checkpoint(tmp_path / "model.pt", vocab).read_bytes()
    with pytest.raises(CheckpointError, match=r"^big\.pt: is [\d,]+ bytes, over the 1,000-byte "
                                              "limit for a checkpoint$"):
        load_uploaded_checkpoint(data, "big.pt", max_bytes=1000)
    assert list(scratch.iterdir()) == []
