"""The Streamlit app (app.py) through streamlit.testing's AppTest, plus its pure helpers.

The app is pointed at random-weights fixture checkpoints with CAPTIONER_CHECKPOINT, so the
captions are nonsense words; every test compares the page with what Captioner itself says.
"""
import dataclasses
import io
import os
import re
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from captioner import Captioner, Vocabulary, inference
from captioner.confidence import CaptionConfidence
from captioner.options import DEFAULT_OPTIONS
from ui.downloads import (CAPTION_SCHEMA, ModelName, batch_csv, batch_json, batch_row,
                          caption_json, grid_png, thumbnail_uri)
from ui.support import (CHECKPOINT_ENV, EXAMPLE_PHOTOS, FOLDER_MODEL, MODEL_DIR_ENV, PIN,
                        STARTUP_MODEL, UPLOADED_MODEL, download_stem, escape_markdown,
                        fit_within, model_sources)

from conftest import EXAMPLES, WORDS, photo, write_checkpoint

APP = Path(__file__).resolve().parents[1] / "app.py"
CHELSEA = (EXAMPLES / "chelsea.jpg").read_bytes()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("app_checkpoints")
    torch.manual_seed(0)  # the same random weights whichever test runs first
    vocab = Vocabulary.build(WORDS, min_count=1)
    return {kind: write_checkpoint(folder / f"{kind}.pt", vocab, kind) for kind in ("soft", "hard", "local")}


@pytest.fixture(scope="module")
def expected(checkpoints):
    """What Captioner says for a photo, with the app's decoding settings (n-best = beam)."""
    models = {kind: Captioner.from_checkpoint(path) for kind, path in checkpoints.items()}

    def caption(image, kind="soft", beam=3, max_length=20, **options):
        return models[kind].caption(image, beam_size=beam, n_best=beam, max_length=max_length,
                                    **options)[0]
    return caption


def start_app(monkeypatch, checkpoint: Path | None, model_dir: Path | None = None) -> AppTest:
    for name, value in ((CHECKPOINT_ENV, checkpoint), (MODEL_DIR_ENV, model_dir)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    app = AppTest.from_file(str(APP), default_timeout=120)
    return app.run()


def timing_line(app: AppTest) -> str:
    return next(c.value for c in app.caption if c.value.startswith("Timing:"))


def photo_uploader(app: AppTest):
    """The photo uploader (its key changes when an example clears it)."""
    [uploader] = [u for u in app.file_uploader if u.key.startswith("upload_")]
    return uploader


def upload(app: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    photo_uploader(app).set_value((name, data, mime))
    return app.run()


def shown_caption(app: AppTest) -> str:
    return app.main.header[0].value


def text(caption) -> str:
    """A caption as the page shows it (a model may end a caption before any word)."""
    return caption.text or "(empty caption)"


def grid_words(app: AppTest) -> list[str]:
    """The titles of the per-word grid tiles (the first image is the large overlay)."""
    return [image.captions[0] for image in app.image[1:]]


def assert_no_problem(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


@pytest.mark.slow
def test_upload_shows_caption_scores_overlays_timing_and_downloads(monkeypatch, checkpoints,
                                                                    expected):
    app = start_app(monkeypatch, checkpoints["soft"])
    assert_no_problem(app)
    assert "Upload a photo or pick an example" in app.info[0].value
    assert "up to 20 MB" in photo_uploader(app).label
    app = upload(app, "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    want = expected(CHELSEA)
    assert len(want.words) >= 2  # the fixture model says something for the cat
    assert shown_caption(app) == text(want)
    assert f"Score **{want.score:.3f}**" in app.markdown[1].value
    others = next(m.value for m in app.markdown if m.value.startswith("2. "))
    assert others.splitlines() == [f"{rank}. `{alt.score:.3f}` {alt.text or '(empty)'}"
                                   for rank, alt in enumerate(want.alternatives[1:], start=2)]
    assert len(want.alternatives) == 3
    # One titled overlay per word, and a selector over the words that drives the large one.
    assert grid_words(app) == want.words
    assert len(app.image) == len(want.words) + 1
    selector = app.select_slider[0]
    assert selector.options == [f"{i}. {word}" for i, word in enumerate(want.words, start=1)]
    last = len(want.words) - 1
    selector.set_value(last).run()
    assert app.image[0].captions[0].startswith(f"“{want.words[last]}” (word {last + 1} of")
    timing = timing_line(app)
    assert "encoder" in timing and "decoder" in timing and " ms" in timing
    assert {b.label for b in app.get("download_button")} == {"Overlay grid (PNG)",
                                                             "Caption + maps (JSON)"}


@pytest.mark.slow
def test_display_changes_reuse_the_caption(monkeypatch, checkpoints):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), "chelsea.jpg", CHELSEA)
    timing = timing_line(app)
    app.slider(key="opacity").set_value(0.3).run()
    app.toggle(key="smooth").set_value(False).run()
    assert_no_problem(app)
    assert timing_line(app) == timing  # not captioned again: same measured timing
    assert len(app.image) > 1


@pytest.mark.slow
@pytest.mark.parametrize("kind, note, smoothing", [
    ("hard", "Expectation: the decoder reads the map's weighted average", False),
    ("local", "Local attention: the outline is the window", True)])
def test_outlined_attention_kinds_say_what_the_outline_is(monkeypatch, checkpoints, expected,
                                                          kind, note, smoothing):
    """Hard attention outlines its chosen cell (smoothing does not apply), local its window."""
    app = upload(start_app(monkeypatch, checkpoints[kind]), "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    want = expected(CHELSEA, kind)
    assert shown_caption(app) == text(want)
    assert grid_words(app) == want.words
    assert any(note in c.value for c in app.caption)
    assert app.toggle(key="smooth").disabled != smoothing
    if kind == "hard":  # the decoding mode is a choice, expectation by default
        assert app.selectbox(key="hard_mode").value == "expectation"
        app.selectbox(key="hard_mode").set_value("argmax").run()
        assert shown_caption(app) == text(expected(CHELSEA, kind, hard_mode="argmax"))
        assert any("Argmax: the decoder reads the single most likely cell, outlined" in c.value
                   for c in app.caption)


def sampled(checkpoint: Path, seed: int, text: str | None = None):
    """The shipped way to sample hard attention: torch's generator seeded, beam 3 (the app's
    default); with text, that text explained instead."""
    model = Captioner.from_checkpoint(checkpoint)
    options = DEFAULT_OPTIONS.replace(hard_mode="sample", n_best=DEFAULT_OPTIONS.beam_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if text is None:
            return model.caption(CHELSEA, options)[0]
        return model.explain(model.encode([CHELSEA]), text, options)


@pytest.mark.slow
def test_hard_sample_mode_has_a_seed_a_sample_again_button_and_stable_explanations(
        monkeypatch, checkpoints):
    app = upload(start_app(monkeypatch, checkpoints["hard"]), "chelsea.jpg", CHELSEA)
    assert not app.number_input and not app.button  # no seed outside sample mode
    app.selectbox(key="hard_mode").set_value("sample").run()
    assert_no_problem(app)
    assert app.number_input(key="hard_seed").value == 0
    assert shown_caption(app) == text(sampled(checkpoints["hard"], 0))
    assert any("Sample: the decoder reads one cell per word drawn" in c.value
               and c.value.endswith("Seed 0. Trained by sampling one cell a word (REINFORCE).")
               for c in app.sidebar.caption)
    app.button(key="sample_again").click().run()
    assert_no_problem(app)
    assert app.number_input(key="hard_seed").value == 1
    assert shown_caption(app) == text(sampled(checkpoints["hard"], 1))
    # Explain scores with the seed: the numbers are the seeded reading's, on every rerun.
    [box] = [t for t in app.text_input if t.label.startswith("Type a caption")]
    box.set_value("a dog runs on the grass").run()
    want = sampled(checkpoints["hard"], 1, "a dog runs on the grass")
    assert any(f"**Your caption** · log-probability {want.log_prob:.2f}" in m.value
               for m in app.markdown)
    app.slider(key="opacity").set_value(0.4)  # any rerun: not drawn again
    del app.session_state["explained"]  # even when the reading is not cached
    app.run()
    assert any(f"**Your caption** · log-probability {want.log_prob:.2f}" in m.value
               for m in app.markdown)
    assert any(c.value.startswith("Read with hard attention in sample mode, seed 1")
               for c in app.caption)
    app.number_input(key="hard_seed").set_value(5).run()
    assert shown_caption(app) == text(sampled(checkpoints["hard"], 5))


@pytest.mark.slow
def test_an_example_clears_the_uploaded_files_and_an_upload_the_example(
        monkeypatch, checkpoints, expected):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), "chelsea.jpg", CHELSEA)
    assert photo_uploader(app).value
    app.segmented_control(key="example").set_value("Coffee").run()
    assert_no_problem(app)
    assert not photo_uploader(app).value  # no file chip beside the example
    assert shown_caption(app) == text(expected(EXAMPLE_PHOTOS["Coffee"]))
    app = upload(app, "chelsea.jpg", CHELSEA)
    assert app.segmented_control(key="example").value is None
    assert shown_caption(app) == text(expected(CHELSEA))


@pytest.mark.slow
def test_word_confidence_and_what_the_cnn_saw(monkeypatch, checkpoints, expected):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    want = expected(CHELSEA)
    confidence = next(m.value for m in app.markdown if "-background[" in m.value)
    shown = re.findall(r"&nbsp;:(\w+)-background\[(\d+)%\]", confidence)
    assert [int(p) for _, p in shown] == [round(100 * p) for p in want.word_probs]
    assert [c for c, _ in shown] == ["green" if p >= 0.5 else "orange" if p >= 0.2 else "red"
                                     for p in want.word_probs]
    labels = next(m.value for m in app.markdown if m.value.startswith("- "))
    assert labels.splitlines()[0].startswith("- Egyptian cat · ")  # the real Lite0 head
    assert len(labels.splitlines()) == 5
    assert any("trained on Flickr8k's photos" in c.value for c in app.caption)


@pytest.mark.slow
def test_the_camera_is_offered_on_request(monkeypatch, checkpoints):
    app = start_app(monkeypatch, checkpoints["soft"])
    assert not app.get("camera_input")  # no permission prompt until asked
    app.toggle(key="use_camera").set_value(True)
    app.run()
    assert_no_problem(app)
    assert len(app.get("camera_input")) == 1


@pytest.mark.slow
def test_many_photos_give_a_table_downloads_and_each_bad_file_its_own_message(
        monkeypatch, checkpoints, expected):
    coffee = (EXAMPLES / "coffee.jpg").read_bytes()
    app = start_app(monkeypatch, checkpoints["soft"])
    photo_uploader(app).set_value([("chelsea.jpg", CHELSEA, "image/jpeg"),
                                   ("broken.jpg", truncated_jpeg(), "image/jpeg"),
                                   ("coffee.jpg", coffee, "image/jpeg")])
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "broken.jpg" in app.error[0].value
    table = app.dataframe[0].value
    assert list(table["file"]) == ["chelsea.jpg", "coffee.jpg"]
    assert list(table["caption"]) == [text(expected(CHELSEA)), text(expected(coffee))]
    assert (table["milliseconds"] > 0).all()
    # A small JPEG thumbnail per row, and the guess and pinned flags.
    assert all(uri.startswith("data:image/jpeg;base64,") for uri in table["thumbnail"])
    # The test files carry no calibrated confidence: the verdict marks only a guess.
    assert list(table["verdict"]) == ["a guess" if expected(p).is_guess else ""
                                      for p in (CHELSEA, coffee)]
    assert table["p_wrong"].isna().all()
    assert list(table["pinned"]) == ["", ""]  # the fixture vocabulary has no tag words
    assert not grid_words(app)  # no overlays until a row is chosen
    app.selectbox(key="batch_pick").set_value(1)
    app.run()
    assert not app.exception and len(app.error) == 1  # the bad file's message stays
    assert shown_caption(app) == text(expected(coffee))
    assert grid_words(app) == expected(coffee).words


def test_batch_downloads_hold_the_table(expected):
    caption = expected(photo(seed=3))
    rows = [batch_row("a,b.jpg", caption), batch_row("c.png", caption)]
    lines = batch_csv(rows).decode().splitlines()
    assert lines[0] == "file,caption,score,milliseconds,verdict,p_wrong,pinned"
    assert lines[1].startswith('"a,b.jpg",') and len(lines) == 3
    assert rows[0]["word_probs"] == [round(p, 3) for p in caption.word_probs]
    record = json.loads(batch_json([{"thumbnail": "data:...", **rows[0]}],
                                   ModelName("Soft attention (shipped)", "soft.pt"),
                                   DEFAULT_OPTIONS))
    assert record["schema"] == {"name": "captioner-app-table", "version": 2}
    assert record["model"] == {"name": "Soft attention (shipped)", "file": "soft.pt"}
    assert "thumbnail" not in record["photos"][0] and record["photos"][0]["file"] == "a,b.jpg"
    judged = dataclasses.replace(caption, confidence=CaptionConfidence("unsure", 0.45678, ()))
    assert batch_row("d.jpg", judged)["verdict"] == "unsure"
    assert batch_row("d.jpg", judged)["p_wrong"] == 0.457
    uri = thumbnail_uri(photo(640, 480, seed=3))
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) < 8000


@pytest.mark.slow
def test_compare_mode_captions_with_every_model_and_one_slider(monkeypatch, checkpoints,
                                                              expected):
    app = start_app(monkeypatch, checkpoints["local"])  # the checkpoint file, beside the shipped
    app.toggle(key="compare_mode").set_value(True)
    app.run()
    app = upload(app, "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    headers = [h.value for h in app.subheader]
    assert "Checkpoint local.pt" in headers
    shipped = [label for label in ("Soft attention (shipped)", "Hard attention (shipped)")
               if label in headers]
    assert len(shipped) == sum(path.exists() for path in inference.DEFAULT_CHECKPOINTS.values())
    local = expected(CHELSEA, "local")
    assert f"**{local.text}**" in [m.value for m in app.markdown]
    # The slider is checked on the shipped soft model's column: the random local model may
    # say a single word.
    want = Captioner.from_checkpoint(inference.DEFAULT_CHECKPOINTS["soft"]).caption(
        CHELSEA, beam_size=3, n_best=3)[0]
    assert f"**{want.text}**" in [m.value for m in app.markdown] and len(want.words) >= 2
    app.select_slider(key="compare_word").set_value(1)
    app.run()
    titles = [c for image in app.image for c in image.captions]
    assert f"“{want.words[1]}” (word 2 of {len(want.words)})" in titles
    overlays = [t for t in titles if t.startswith(("“", "(this caption has"))]
    assert len(overlays) == len(headers)  # one large overlay per model, all at word 2
    # Each model keeps its word grid (tiles titled by their words) and says what guided it.
    assert len(titles) - len(overlays) >= len(want.words) + len(local.words)
    assert sum(m.value.startswith(("Pinned:", "No label guided it"))
               for m in app.markdown) == len(headers)
    assert len([b for b in app.get("download_button")]) == len(headers)


def truncated_jpeg() -> bytes:
    return CHELSEA[: len(CHELSEA) // 3]


def huge_png() -> bytes:
    """A valid 1x1 PNG whose header claims 10000x5000 pixels (over MAX_PIXELS)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", 10000, 5000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


@pytest.mark.parametrize("name, data, message", [
    ("notes.jpg", b"these are not the pixels you are looking for", "not an image file"),
    ("cut.jpg", truncated_jpeg(), "cannot decode image"),
    ("empty.png", b"", "file is empty"),
    ("huge.png", huge_png(), "the limit is 40,000,000 pixels"),
])
@pytest.mark.slow
def test_bad_upload_shows_an_error_and_the_next_upload_works(monkeypatch, checkpoints,
                                                             expected, name, data, message):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), name, data)
    assert not app.exception
    [error] = app.error
    assert name in error.value and message in error.value
    assert not app.main.header  # no caption shown
    good = photo(seed=4)
    buffer = io.BytesIO()
    good.save(buffer, format="PNG")
    app = upload(app, "good.png", buffer.getvalue(), "image/png")
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(good))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.slow
def test_every_accepted_format_and_exif_orientation(monkeypatch, checkpoints, expected):
    app = start_app(monkeypatch, checkpoints["soft"])
    frames = [photo(seed=7), photo(seed=8)]
    uploads = [
        ("p.png", encoded(photo(seed=5), "PNG"), "image/png"),
        ("p.webp", encoded(photo(seed=6), "WEBP", lossless=True), "image/webp"),
        ("p.bmp", encoded(photo(seed=6), "BMP"), "image/bmp"),
        ("p.gif", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
         "image/gif"),
    ]
    for name, data, mime in uploads:
        app = upload(app, name, data, mime)
        assert_no_problem(app)
        assert shown_caption(app) == text(expected(data))
    # A phone photo stored sideways with EXIF orientation 6: captioned and drawn upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    app = upload(app, "phone.jpg", encoded(photo(160, 120, seed=9), "JPEG", exif=exif))
    assert_no_problem(app)
    _, upright, large, tile = app.session_state["photo"]  # overlays are drawn on large, tile
    assert upright.size == (120, 160)
    assert large.height > large.width and tile.height > tile.width


@pytest.mark.slow
def test_changing_beam_size_and_length_reruns(monkeypatch, checkpoints, expected):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), "chelsea.jpg", CHELSEA)
    app.slider(key="beam").set_value(1).run()
    assert_no_problem(app)
    greedy = expected(CHELSEA, beam=1)
    assert shown_caption(app) == text(greedy)
    assert not any(m.value.startswith("2. ") for m in app.markdown)  # one hypothesis: no list
    app.slider(key="beam").set_value(5).run()
    app.slider(key="max_length").set_value(4).run()
    assert_no_problem(app)
    want = expected(CHELSEA, beam=5, max_length=4)
    assert shown_caption(app) == text(want)
    assert len(want.words) <= 4 and grid_words(app) == want.words
    others = next(m.value for m in app.markdown if m.value.startswith("2. "))
    assert len(others.splitlines()) == 4


@pytest.mark.slow
def test_example_photo_and_the_last_chosen_source_wins(monkeypatch, checkpoints, expected):
    app = start_app(monkeypatch, checkpoints["soft"])
    app.segmented_control(key="example").set_value("Astronaut").run()
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(EXAMPLE_PHOTOS["Astronaut"]))
    app = upload(app, "chelsea.jpg", CHELSEA)
    assert shown_caption(app) == text(expected(CHELSEA))
    app.segmented_control(key="example").set_value("Rocket").run()
    assert_no_problem(app)
    want = expected(EXAMPLE_PHOTOS["Rocket"])
    assert shown_caption(app) == text(want)
    if not want.words:  # no word, no maps: the photo itself is shown
        assert [image.captions for image in app.image] == [["rocket.jpg"]]


@pytest.mark.slow
def test_missing_shipped_model_tells_the_user_what_to_do(monkeypatch, tmp_path, checkpoints,
                                                       expected):
    monkeypatch.setitem(inference.DEFAULT_CHECKPOINTS, "soft", tmp_path / "soft_flickr8k.pt")
    app = upload(start_app(monkeypatch, None), "chelsea.jpg", CHELSEA)
    assert not app.exception
    [error] = app.error
    assert "not installed yet" in error.value and "Upload a checkpoint" in error.value
    assert not app.main.header
    # Following the advice works, and the photo uploaded meanwhile is still there.
    app.sidebar.radio(key="model_source").set_value(UPLOADED_MODEL).run()
    assert "Upload a checkpoint (.pt) in the sidebar" in app.error[0].value
    upload_model(app, "my model.pt", checkpoints["soft"].read_bytes())
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(CHELSEA))


def upload_model(app: AppTest, name: str, data: bytes) -> AppTest:
    app.file_uploader(key="model_upload").set_value((name, data, "application/octet-stream"))
    return app.run()


@pytest.fixture
def model_dir(tmp_path, checkpoints) -> Path:
    """A server model folder: two checkpoints, and things that must not be offered."""
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "b_local.pt").write_bytes(checkpoints["local"].read_bytes())
    (folder / "a_soft.pt").write_bytes(checkpoints["soft"].read_bytes())
    (folder / "notes.txt").write_text("not a model")
    (folder / "sub" / "nested.pt").write_bytes(checkpoints["soft"].read_bytes())
    (folder / "outside.pt").symlink_to(checkpoints["hard"])  # a link out of the folder
    os.mkfifo(folder / "pipe.pt")  # would block a reader forever
    return folder


def model_widgets(app: AppTest) -> tuple[list, list]:
    return ([s for s in app.selectbox if s.key == "model_file"],
            [u for u in app.file_uploader if u.key == "model_upload"])


@pytest.mark.slow
def test_no_path_box_and_the_model_folder_only_with_its_variable(monkeypatch, checkpoints,
                                                                  model_dir, expected):
    app = start_app(monkeypatch, None)
    assert not app.text_input  # no server path is ever typed into the page
    assert app.sidebar.radio(key="model_source").options == [
        "Soft attention (shipped)", "Hard attention (shipped)", "Upload a checkpoint"]
    assert model_widgets(app) == ([], [])
    app = start_app(monkeypatch, None, model_dir)
    radio = app.sidebar.radio(key="model_source")
    assert "Server model folder" in radio.options and radio.value == "soft"
    radio.set_value(FOLDER_MODEL).run()
    assert not app.text_input
    [files], _ = model_widgets(app)
    assert files.options == ["a_soft.pt", "b_local.pt"]  # regular .pt files directly inside
    assert files.value == "a_soft.pt"
    app = upload(app, "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(CHELSEA))
    app.selectbox(key="model_file").set_value("b_local.pt").run()
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(CHELSEA, "local"))
    # Compare mode shows the folder's model beside the shipped ones.
    app.toggle(key="compare_mode").set_value(True).run()
    assert "Checkpoint b_local.pt" in [h.value for h in app.subheader]


@pytest.mark.slow
def test_an_empty_model_folder_says_so(monkeypatch, tmp_path):
    app = start_app(monkeypatch, None, tmp_path)
    app.sidebar.radio(key="model_source").set_value(FOLDER_MODEL).run()
    assert not app.exception
    assert "Choose a checkpoint from the model folder" in app.error[0].value


@pytest.mark.slow
def test_uploaded_checkpoints_caption_and_a_bad_one_gets_a_message(monkeypatch, checkpoints,
                                                                    expected):
    app = upload(start_app(monkeypatch, None), "chelsea.jpg", CHELSEA)
    app.sidebar.radio(key="model_source").set_value(UPLOADED_MODEL).run()
    [], [uploader] = model_widgets(app)
    assert "up to 64 MB" in uploader.label
    assert "up to 20 MB" in photo_uploader(app).label  # photos keep their limit
    app = upload_model(app, "broken.pt", b"PK\x03\x04 definitely not torch")
    assert not app.exception
    [error] = app.error
    assert "Cannot load the model: broken.pt: not a readable PyTorch checkpoint" in error.value
    assert "/tmp" not in error.value  # the server's temporary file is never shown
    app = upload_model(app, "local.pt", checkpoints["local"].read_bytes())
    assert_no_problem(app)
    assert shown_caption(app) == text(expected(CHELSEA, "local"))
    app.toggle(key="compare_mode").set_value(True).run()
    assert_no_problem(app)
    assert "Upload local.pt" in [h.value for h in app.subheader]


@pytest.mark.parametrize("contents, message", [
    (None, "no such checkpoint file"),
    (b"PK\x03\x04 definitely not torch", "not a readable PyTorch checkpoint"),
])
@pytest.mark.slow
def test_bad_checkpoint_shows_an_error_not_a_crash(monkeypatch, tmp_path, contents, message):
    path = tmp_path / "model.pt"
    if contents is not None:
        path.write_bytes(contents)
    app = start_app(monkeypatch, path)
    assert not app.exception
    [error] = app.error
    assert "Cannot load the model" in error.value and message in error.value
    assert str(path) in error.value


@pytest.mark.slow
def test_model_loads_once_and_is_shared_by_sessions(monkeypatch, tmp_path):
    path = write_checkpoint(tmp_path / "shared.pt", Vocabulary.build(WORDS, min_count=1))
    loads = []
    load = Captioner.from_checkpoint.__func__

    def counting_load(cls, checkpoint=None, encoder_weights=None):
        loads.append(str(checkpoint))
        return load(cls, checkpoint, encoder_weights)
    monkeypatch.setattr(Captioner, "from_checkpoint", classmethod(counting_load))
    for _ in range(2):  # two sessions, one after the other, in one server process
        app = upload(start_app(monkeypatch, path), "chelsea.jpg", CHELSEA)
        assert_no_problem(app)
    assert loads == [str(path)]


# --- the pure helpers in ui/support.py ----------------------------------------------------

def test_downloads_are_a_png_grid_and_json_with_maps(expected):
    image = photo(320, 200, seed=2)
    caption = expected(image)
    sheet = Image.open(io.BytesIO(grid_png(image, caption, hard=False, smooth=True, opacity=0.6)))
    assert sheet.format == "PNG" and sheet.width > 256
    data = caption_json(caption, "cat.jpg", ModelName("Checkpoint model.pt", "model.pt"),
                        DEFAULT_OPTIONS)
    record = json.loads(data)
    assert record["schema"] == CAPTION_SCHEMA and record["schema"]["version"] == 1
    assert record["image"] == "cat.jpg"
    assert record["model"] == {"name": "Checkpoint model.pt", "file": "model.pt"}
    assert record["decoding"]["beam_size"] == DEFAULT_OPTIONS.beam_size
    assert record["words"] == caption.words
    assert np.asarray(record["attention"]).shape == caption.alphas.shape
    assert [a["caption"] for a in record["alternatives"]] == [a.text for a in caption.alternatives]
    assert record["word_probs"] == pytest.approx(caption.word_probs, abs=5e-4)
    assert len(record["word_probs"]) == len(caption.words)
    assert all(len(a["word_probs"]) == len(a["caption"].split()) for a in record["alternatives"])
    assert [t["label"] for t in record["imagenet_top5"]] == [l.name for l in caption.imagenet]


def test_small_helpers():
    assert fit_within(photo(1000, 500), 400).size == (400, 200)
    small = photo(100, 50)
    assert fit_within(small, 400) is small
    assert download_stem("My photo (1).JPG") == "My_photo_1"
    assert download_stem("...") == "photo"
    assert escape_markdown("a *b* [c](d) #1") == r"a \*b\* \[c\]\(d\) \#1"
    assert model_sources(False, False) == ("soft", "hard", UPLOADED_MODEL)
    assert model_sources(True, True) == ("soft", "hard", STARTUP_MODEL, FOLDER_MODEL,
                                         UPLOADED_MODEL)


@pytest.fixture(scope="module")
def cat_checkpoint(tmp_path_factory) -> Path:
    """A random-weights model whose vocabulary has "cat": the real encoder tags the cat photo."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(WORDS + [["cat", "cats"]], min_count=1)
    return write_checkpoint(tmp_path_factory.mktemp("cat") / "cat.pt", vocab, "soft")


def test_a_tag_is_placed_marked_and_named_with_its_labels(monkeypatch, cat_checkpoint):
    app = upload(start_app(monkeypatch, cat_checkpoint), "chelsea.jpg", CHELSEA)
    assert_no_problem(app)
    placed = {"cat", "cats"} & set(shown_caption(app).split())  # either form satisfies the tag
    assert len(placed) == 1
    confidence = next(m.value for m in app.markdown if "-background[" in m.value)
    word = placed.pop()
    assert f":blue[**{word}**&nbsp;{PIN}]" in confidence and confidence.count(PIN) == 1
    # Beside the pin: the tag's confidence from the CNN, not the caption model's p(word).
    [tag] = app.session_state["caption"][1].tags
    assert f":blue-background[CNN {tag.confidence:.0%}]" in confidence
    guided = next(m.value for m in app.markdown if m.value.startswith("**Guided the caption**"))
    assert "**cat**" in guided and "Egyptian cat" in guided and f"placed as “{word}”" in guided
    assert f"the CNN's confidence **{tag.confidence:.0%}**" in guided
    # The rule in the thresholds the options in use apply.
    assert f"reaches {DEFAULT_OPTIONS.tag_threshold:.0%}" in guided
    app.toggle(key="grounding").set_value(False).run()
    confidence = next(m.value for m in app.markdown if "-background[" in m.value)
    assert PIN not in confidence
    assert any(m.value.startswith("Grounding is off") for m in app.markdown)


def test_explain_a_typed_caption_marks_unknown_words_and_refuses_empty_text(
        monkeypatch, checkpoints):
    app = upload(start_app(monkeypatch, checkpoints["soft"]), "chelsea.jpg", CHELSEA)
    [box] = [t for t in app.text_input if t.label.startswith("Type a caption")]
    assert box.value == shown_caption(app)  # starts from the model's own caption
    box.set_value("Two DOGS run, on a zebracorn!").run()
    explanation = app.get("markdown")
    shown = next(m.value for m in explanation if "end of caption" in m.value)
    words = re.findall(r'nowrap">(.*?)</span>', shown)
    assert words[0].startswith("two&nbsp;:")
    # The unknown word is struck through, with no probability (it was read as <unk>).
    assert words[5] == "~~zebracorn~~&nbsp;:gray[(unknown)]"
    assert len(words) == 7 and words[6].startswith("end of caption")
    assert "dogs&nbsp;" in shown and "run&nbsp;" in shown  # case and punctuation as tokenized
    [line] = [m.value for m in explanation if "Not in the model's vocabulary" in m.value]
    assert "“zebracorn”" in line and "known words" in line
    assert any(c.value.startswith("Read with soft attention") for c in app.caption)
    [box] = [t for t in app.text_input if t.label.startswith("Type a caption")]
    box.set_value("?!").run()
    assert any("Cannot read that caption" in w.value for w in app.warning)


def test_the_model_line_says_when_the_maps_are_sharpened(monkeypatch, tmp_path, vocab):
    for temperature, said in ((1.0, False), (0.5, True)):
        path = write_checkpoint(tmp_path / f"t{temperature}.pt", vocab,
                                attention_temperature=temperature)
        app = start_app(monkeypatch, path)
        assert_no_problem(app)
        lines = [c.value for c in app.caption]
        assert any("attention ·" in line for line in lines)
        assert any("maps sharpened (temperature 0.5)" in line for line in lines) == said
