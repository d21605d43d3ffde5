"""Streamlit app: caption a photo and see where each word looked.

    streamlit run app.py

UI only: captioning is captioner.Captioner, drawing is captioner.overlay, and the few pure
helpers (downloads, paths, labels) are in ui.support. The model is loaded once per
process and shared, read-only, by every session. CAPTIONER_CHECKPOINT=path makes a checkpoint
file the default model; CAPTIONER_MODEL_DIR=folder offers that folder's .pt files by name; a
visitor may also upload a checkpoint (read with weights_only, size-limited). The page never
takes a server path.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from captioner import Captioner, CheckpointError, ImageError, load_image
from ui.support import (EXAMPLE_PHOTOS, FOLDER_MODEL, STARTUP_MODEL, UPLOAD_TYPES,
                        UPLOADED_MODEL, caption_json, download_stem, env_checkpoint,
                        env_model_dir, batch_csv, batch_row, confidence_markdown,
                        escape_markdown, explanation_markdown, fit_within, format_timing,
                        grid_png, grounding_markdown, load_uploaded_checkpoint,
                        model_dir_choices, model_dir_path, model_sources)
from captioner.decoding import DEFAULT_OPTIONS, HARD_MODES, MAX_CAPTION_LENGTH, DecodeOptions
from captioner.inference import (DEFAULT_CHECKPOINTS, PHOTOS_PER_CALL, default_checkpoint,
                                 in_chunks)
from captioner.overlay import map_style, word_overlays

MODEL_LABELS = {"soft": "Soft attention (shipped)", "hard": "Hard attention (shipped)",
                STARTUP_MODEL: "Start-up checkpoint", FOLDER_MODEL: "Server model folder",
                UPLOADED_MODEL: "Upload a checkpoint"}
# A photo upload's limit, in MB. server.maxUploadSize (.streamlit/config.toml) is the larger
# checkpoint uploads' limit (shipped models are 21 MB); the smaller of the two applies to photos.
PHOTO_UPLOAD_MB = 20
# Why a photo of a cat can be captioned "a brown dog": what the caption model has seen.
TRAINED_ON = ("The captions come from a model trained on Flickr8k: 8,000 photos with 5 "
              "captions each, mostly people and dogs outdoors. With grounding on (sidebar), a "
              "label the CNN is sure of must appear in the caption (blue, pinned), and its rivals "
              "(\"dog\" on a photo that is surely a cat) may not.")
GUESS_WARNING = ("**This caption is a guess.** No label of the CNN was sure enough to guide it, "
                 "and the caption model was unsure of its words: the photo is probably unlike "
                 "the Flickr8k photos (people and dogs outdoors) it learnt from.")
HARD_MODE_LABELS = {"expectation": "Expectation over regions",
                    "argmax": "The most likely region",
                    "sample": "A sampled region (differs each run)"}
LARGE_SIDE = 900  # longest side of the large overlay, in pixels
TILE_SIDE = 320  # longest side of one grid tile
GRID_COLUMNS = 5
MAX_TYPED_CHARACTERS = 400  # a typed caption; the model reads at most 50 words of it


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


def remember_source(source: str) -> None:
    st.session_state["source"] = source  # the photo source the user touched last wins


class ModelSource(NamedTuple):
    """The model the sidebar chose: a checkpoint file on the server, or an uploaded one."""

    choice: str  # a shipped kind, STARTUP_MODEL, FOLDER_MODEL or UPLOADED_MODEL
    label: str  # how compare mode names it
    path: Path | None = None  # a server file: shipped, start-up, or from the model folder
    upload: tuple[bytes, str] | None = None  # an uploaded checkpoint's bytes and file name


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


def open_model(source: ModelSource) -> tuple[Captioner, str, object]:
    """(the cached model, its name for downloads, its version) for a source with a file or an
    upload. Raises CheckpointError (or OSError) when it cannot be loaded."""
    if source.upload is not None:
        data, name = source.upload
        digest = hashlib.sha256(data).hexdigest()
        return (load_uploaded_captioner(digest, data, name, checkpoint_upload_mb()), name,
                digest)
    modified = source.path.stat().st_mtime_ns if source.path.is_file() else 0
    return load_captioner(str(source.path), modified), str(source.path), modified


def load_model(source: ModelSource) -> tuple[Captioner, str, object]:
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


def choose_photos(limit_mb: int) -> list[tuple[bytes, str]]:
    """The uploads, the camera's photo or the example the user picked last, as (bytes, name)."""
    upload_column, example_column = st.columns([3, 2])
    uploaded = upload_column.file_uploader(
        f"Upload photos (JPEG, PNG, WebP, BMP or GIF; up to {limit_mb} MB each; several give "
        "a table)", type=list(UPLOAD_TYPES), key="upload", accept_multiple_files=True,
        max_upload_size=limit_mb, on_change=remember_source, args=("upload",))
    example = example_column.segmented_control(
        "…or try an example", list(EXAMPLE_PHOTOS), key="example",
        on_change=remember_source, args=("example",))
    # The camera asks the browser for permission as soon as it is shown: only on request.
    snapshot = None
    if upload_column.toggle("Take a photo with the camera", key="use_camera"):
        snapshot = upload_column.camera_input("Camera", key="camera", on_change=remember_source,
                                              args=("camera",))
    source = st.session_state.get("source")
    if snapshot is not None and (source == "camera" or (not uploaded and not example)):
        return [(snapshot.getvalue(), "camera.jpg")]
    if example and (source == "example" or not uploaded):
        path = EXAMPLE_PHOTOS[example]
        return [(path.read_bytes(), path.name)]
    return [(file.getvalue(), file.name) for file in uploaded or []]


def decoded_photo(data: bytes, name: str):
    """The upright RGB photo; decoded once per distinct file per session. Raises ImageError."""
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


def captioned(captioner: Captioner, key: tuple, photo, options: DecodeOptions):
    """Caption once per photo, model and decoding options; display changes reuse it."""
    saved = st.session_state.get("caption")
    if saved is None or saved[0] != (key, options):
        with st.spinner("Captioning…"):
            encoded = encoded_photo(captioner, key, photo)
            with model_lock():
                # Every hypothesis of the beam is listed under the caption.
                caption = captioner.caption_encoded(
                    encoded, options.replace(n_best=options.beam_size))[0]
        saved = ((key, options), caption)
        st.session_state["caption"] = saved
    return saved[1]


def explained(captioner: Captioner, key: tuple, photo, text: str, options: DecodeOptions):
    """The typed caption read by the model (None when nothing is typed); a message for text
    it cannot read."""
    if not text.strip():
        return None
    encoded = encoded_photo(captioner, key, photo)
    try:
        with model_lock():
            return captioner.explain(encoded, text, options)
    except ValueError as exc:
        return str(exc)


def show_explanation(explanation, caption, tile, draw: dict, text_key: str) -> None:
    """Explain a caption: the user's text beside the model's own, word by word."""
    st.subheader("Explain a caption", anchor=False)
    st.text_input("Type a caption, or edit the model's, to see how likely the model finds "
                  "each word and where it looks for it (teacher forcing)", key=text_key,
                  max_chars=MAX_TYPED_CHARACTERS)
    if explanation is None:
        st.info("Type a caption above.")
        return
    if isinstance(explanation, str):
        st.warning(f"Cannot read that caption: {explanation}.")
        return
    ours, theirs = st.columns(2)
    ours.markdown("**The model's caption**")
    ours.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged)
                  or "(empty caption)")
    theirs.markdown(f"**Your caption** · log-probability {explanation.log_prob:.2f} "
                    f"(the model's own: {caption.log_prob:.2f})")
    with theirs.container(key="explanation"):
        st.markdown(explanation_markdown(explanation))
    if not all(explanation.known):
        theirs.caption("Struck-through words are not in the model's vocabulary: it read "
                       "each as an unknown word.")
    if explanation.words == caption.words:
        st.caption("The model's own words: where it looks for each is shown above.")
        return
    tiles = list(zip(explanation.words, word_overlays(tile, explanation.alphas, **draw)))
    for start in range(0, len(tiles), GRID_COLUMNS):
        for column, (word, image) in zip(st.columns(GRID_COLUMNS),
                                         tiles[start:start + GRID_COLUMNS]):
            column.image(image, caption=word, width="stretch", output_format="JPEG")


def show_caption(caption, model_path: str, image_name: str, photo, draw: dict,
                 explanation=None) -> None:
    with st.container(key="caption"):
        st.header(escape_markdown(caption.text) if caption.words else "(empty caption)",
                  anchor=False)
        if caption.is_guess:
            st.warning(GUESS_WARNING, icon="❔")
        st.markdown(f"Score **{caption.score:.3f}** · log-probability {caption.log_prob:.3f} · "
                    f"{len(caption.words)} words")
    if caption.words:
        with st.container(key="confidence"):
            st.markdown("**How sure the model was of each word**: p(word | photo, the words "
                        "before it)")
            st.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged))
    if len(caption.alternatives) > 1:
        with st.container(key="alternatives"):
            st.markdown("**Other beam hypotheses**")
            st.markdown("\n".join(
                f"{rank}. `{alt.score:.3f}` {escape_markdown(alt.text) or '(empty)'}"
                for rank, alt in enumerate(caption.alternatives[1:], start=2)))
            with st.expander("Their words' probabilities"):
                st.markdown("\n\n".join(
                    f"{rank}. {confidence_markdown(alt.words, alt.word_probs) or '(empty)'}"
                    for rank, alt in enumerate(caption.alternatives[1:], start=2)))
    if caption.imagenet:
        with st.container(key="imagenet"):
            st.markdown("**What the CNN saw**: the encoder's own ImageNet classifier, top 5")
            st.markdown("\n".join(f"- {escape_markdown(label.name)} · {label.probability:.0%}"
                                   for label in caption.imagenet))
            st.markdown(grounding_markdown(caption) if st.session_state.get("grounding", True)
                        else "Grounding is off: no label guided the caption.")
            st.caption(TRAINED_ON)
    st.caption(f"Timing: {format_timing(caption.timing)}")
    stem = download_stem(image_name)
    left, right = st.columns(2)
    left.download_button(
        "Overlay grid (PNG)", key="download_grid", on_click="ignore", mime="image/png",
        file_name=f"{stem}.attention.png",
        data=lambda: grid_png(photo, caption, **draw))
    right.download_button(
        "Caption + maps (JSON)", key="download_json", on_click="ignore",
        mime="application/json", file_name=f"{stem}.caption.json",
        data=caption_json(caption, image_name, model_path,
                          explanation if not isinstance(explanation, str) else None))


def show_attention(caption, large, draw: dict) -> None:
    words = caption.words
    index = 0
    if len(words) > 1:
        # Numbered labels: the slider's front end cannot tell apart two options with the same
        # label, and captions repeat words ("a dog and a cat").
        index = st.select_slider("Word", options=range(len(words)),
                                 format_func=lambda i: f"{i + 1}. {words[i]}")
    [picked] = word_overlays(large, caption.alphas[index:index + 1], **draw)
    st.image(picked, width="stretch",
             caption=f"“{words[index]}” (word {index + 1} of {len(words)})",
             output_format="JPEG")


def show_grid(caption, tile, draw: dict) -> None:
    st.subheader("Where each word looked", anchor=False)
    tiles = list(zip(caption.words, word_overlays(tile, caption.alphas, **draw)))
    for start in range(0, len(tiles), GRID_COLUMNS):
        for column, (word, image) in zip(st.columns(GRID_COLUMNS),
                                         tiles[start:start + GRID_COLUMNS]):
            column.image(image, caption=word, width="stretch", output_format="JPEG")


def show_batch(captioner: Captioner, files: list[tuple[bytes, str]], options: DecodeOptions,
               model_key: tuple) -> tuple[bytes, str] | None:
    """Several photos: a table (file, caption, score, milliseconds) with CSV and JSON
    downloads; a bad file gets its own message and the rest are captioned, up to
    PHOTOS_PER_CALL in one call. Returns the file of the row the user picked, whose overlays
    are shown below."""
    # Only the current files' results are kept: a long session does not pile up old ones.
    previous = st.session_state.get("batch", {})
    results = st.session_state["batch"] = {}
    keys, waiting = [], []
    for data, name in files:
        key = (hashlib.sha256(data).hexdigest(), model_key, options)
        keys.append(key)
        if key in results:  # the same file twice
            continue
        if key in previous:
            results[key] = previous[key]
            continue
        try:
            photo = load_image(data, name)
        except ImageError as exc:
            results[key] = str(exc)
        else:
            results[key] = None
            waiting.append((key, photo))
    for chunk in in_chunks(waiting, PHOTOS_PER_CALL):
        with st.spinner(f"Captioning {len(chunk)} photos…"), model_lock():
            captions = captioner.caption([photo for _, photo in chunk], options)
        for (key, _), caption in zip(chunk, captions):
            results[key] = caption
    rows, good = [], []
    for key, (data, name) in zip(keys, files):
        result = results[key]
        if isinstance(result, str):
            st.error(f"**{escape_markdown(name)}**: cannot use this file. {result}.")
            continue
        rows.append(batch_row(name, result))
        good.append((data, name))
    if not rows:
        return None
    st.subheader(f"{len(rows)} photos captioned", anchor=False)
    st.dataframe(rows, key="batch_table", hide_index=True, width="stretch",
                 column_order=("file", "caption", "score", "milliseconds"))
    left, right = st.columns(2)
    left.download_button("Table (CSV)", key="download_batch_csv", on_click="ignore",
                         mime="text/csv", file_name="captions.csv", data=batch_csv(rows))
    right.download_button("Table (JSON)", key="download_batch_json", on_click="ignore",
                          mime="application/json", file_name="captions.json",
                          data=json.dumps(rows, indent=1).encode("utf-8"))
    picked = st.selectbox("Open a photo's overlays", range(len(rows)), index=None,
                          key="batch_pick", placeholder="Choose a row of the table",
                          format_func=lambda i: f"{i + 1}. {rows[i]['file']}: {rows[i]['caption']}")
    if picked is None:
        st.info("Choose a row to see where each of its words looked.")
        return None
    return good[picked]


def available_models(source: ModelSource) -> dict[str, ModelSource]:
    """Compare mode's models: the installed shipped ones, and the chosen one when it is not
    shipped (the start-up checkpoint, a model-folder file or an upload)."""
    models = {MODEL_LABELS[kind]: ModelSource(kind, MODEL_LABELS[kind], default_checkpoint(kind))
              for kind in DEFAULT_CHECKPOINTS if default_checkpoint(kind).exists()}
    if source.choice not in DEFAULT_CHECKPOINTS and (source.path or source.upload):
        models.setdefault(source.label, source)
    return models


def show_compare(models: dict[str, ModelSource], digest: str, photo, large, options: DecodeOptions,
                 smooth: bool, opacity: float) -> None:
    """Every model on one photo, side by side; one slider picks the word position in all."""
    # Only this photo's results are kept (one entry per model and decoding settings).
    results = {key: value for key, value in st.session_state.get("compare", {}).items()
               if key[0] == digest}
    st.session_state["compare"] = results
    encoded = {}  # encoder_key -> the photo through that encoder, once per encoder
    captions = {}
    for label, source in models.items():
        try:
            captioner, name, version = open_model(source)
        except (CheckpointError, OSError) as exc:
            st.error(f"{label}: cannot load the model: {exc}")
            continue
        key = (digest, name, version, options)
        if key not in results:
            shared = captioner.encoder_key
            with model_lock():
                if shared is None or shared not in encoded:
                    encoded[shared] = captioner.encode([photo])
                results[key] = captioner.caption_encoded(encoded[shared], options)[0]
        captions[label] = (captioner, results[key])
    if not captions:
        return
    longest = max(len(caption.words) for _, caption in captions.values())
    index = 0
    if longest > 1:
        index = st.select_slider("Word position (all models)", options=range(longest),
                                 key="compare_word", format_func=lambda i: f"word {i + 1}")
    for column, (label, (captioner, caption)) in zip(st.columns(len(captions)),
                                                     captions.items()):
        with column:
            st.subheader(label, anchor=False)
            st.markdown(f"**{escape_markdown(caption.text) or '(empty caption)'}**")
            st.caption(f"Score {caption.score:.3f} · {describe_model(captioner)}")
            if caption.words:
                st.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged))
            draw = {**map_style(captioner.config), "smooth": smooth, "opacity": opacity}
            if index < len(caption.words):
                [picked] = word_overlays(large, caption.alphas[index:index + 1], **draw)
                st.image(picked, width="stretch", output_format="JPEG",
                         caption=f"“{caption.words[index]}” (word {index + 1} of "
                                 f"{len(caption.words)})")
            else:
                st.image(large, width="stretch", output_format="JPEG",
                         caption=f"(this caption has {len(caption.words)} words)")
    first = next(iter(captions.values()))[1]
    if first.imagenet:
        st.markdown("**What the CNN saw** (ImageNet top 5): " + " · ".join(
            f"{escape_markdown(label.name)} {label.probability:.0%}" for label in first.imagenet))
        st.caption(TRAINED_ON)


def main() -> None:
    st.set_page_config(page_title="Show, attend and tell", layout="wide")
    st.title("Show, attend and tell", anchor=False)
    st.markdown("Caption a photo and see where the model looked for every word.")

    # Every input first, so a model that fails to load keeps the photo and settings.
    source = model_choice()
    model_info = st.sidebar.container()
    st.sidebar.header("Decoding")
    beam = st.sidebar.slider("Beam size", 1, 10, DEFAULT_OPTIONS.beam_size, key="beam",
                             help="1 = greedy decoding; larger beams also list more hypotheses.")
    max_length = st.sidebar.slider("Maximum caption length (words)", 1, MAX_CAPTION_LENGTH,
                                   DEFAULT_OPTIONS.max_length, key="max_length")
    block_repeats = st.sidebar.toggle("Never repeat a phrase", value=DEFAULT_OPTIONS.block_repeats,
                                      key="block_repeats",
                                      help="No pair of words appears twice in a caption, and a "
                                           "word such as 'shirt' is not said twice without need.")
    grounding = st.sidebar.toggle(
        "Name what the CNN sees", value=DEFAULT_OPTIONS.grounding, key="grounding",
        help="The encoder's own ImageNet classifier tags the photo; a tag it is sure of must "
             "appear in the caption (blue, pinned), and a word naming a rival of a very sure tag "
             "(\"dog\" on a photo that is surely a cat) may not. Off: the caption model alone.")
    hard_box = st.sidebar.container()
    st.sidebar.header("Display")
    smooth_box = st.sidebar.container()
    opacity = st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="opacity")
    st.sidebar.header("Compare")
    compare = st.sidebar.toggle("Every model side by side", key="compare_mode",
                                help="The shipped models and the chosen checkpoint (when it is "
                                     "not a shipped one) caption the same photo; one slider "
                                     "picks the word.")
    chosen = choose_photos(min(PHOTO_UPLOAD_MB, checkpoint_upload_mb()))

    captioner, model_path, modified = load_model(source)
    model_info.caption(describe_model(captioner))
    style = map_style(captioner.config)
    hard = style["hard"] and not compare
    smooth = smooth_box.toggle("Smooth attention maps", value=True, key="smooth", disabled=hard,
                               help="Soft attention only: blur the grid like the paper's "
                                    "figures; off shows the cells the model really sees.")
    hard_mode = DEFAULT_OPTIONS.hard_mode
    if style["hard"]:
        hard_mode = hard_box.selectbox(
            "Hard attention: how it looks", HARD_MODES, key="hard_mode",
            index=HARD_MODES.index(DEFAULT_OPTIONS.hard_mode or HARD_MODES[0]),
            format_func=HARD_MODE_LABELS.get)
        hard_box.caption("Trained by sampling one region a word (REINFORCE); expectation "
                         "averages the regions by their probability, as the paper scored it. "
                         "The map is the distribution over cells; the outline its most "
                         "likely cell.")
    if style["window"] and not compare:
        smooth_box.caption("Local attention: the outline is the window around the centre it "
                           "predicted for the word; it sees nothing outside it.")
    draw = {**style, "smooth": smooth, "opacity": opacity}
    options = DEFAULT_OPTIONS.replace(beam_size=beam, max_length=max_length,
                                      block_repeats=block_repeats, grounding=grounding,
                                      hard_mode=hard_mode)

    if not chosen:
        st.info("Upload a photo or pick an example to caption it.")
        return
    if len(chosen) > 1:
        picked = show_batch(captioner, chosen, options, (model_path, modified))
        if picked is None:
            return
        st.divider()
        data, name = picked
    else:
        [(data, name)] = chosen
    try:
        digest, photo, large, tile = decoded_photo(data, name)
    except ImageError as exc:
        st.error(f"Cannot use this file. {exc}. Upload another photo (JPEG, PNG, WebP, BMP or "
                 "GIF).")
        return
    if compare:
        show_compare(available_models(source), digest, photo, large, options, smooth,
                     opacity)
        return
    caption = captioned(captioner, (digest, model_path, modified), photo, options)

    # The typed caption is read first, so the JSON download above it can hold it too.
    text_key = f"explain_{digest[:16]}_{model_path}"
    suggested_key = f"{text_key}_suggested"
    # The box follows the model's caption (new settings, a new caption) until the user edits it.
    if st.session_state.get(text_key) in (None, st.session_state.get(suggested_key)):
        st.session_state[text_key] = caption.text
    st.session_state[suggested_key] = caption.text
    explanation = explained(captioner, (digest, model_path, modified), photo,
                            st.session_state[text_key], options)
    picture, text = st.columns([3, 2], gap="large")
    with text:
        show_caption(caption, model_path, name, photo, draw, explanation)
    if caption.words:
        with picture:
            show_attention(caption, large, draw)
        show_grid(caption, tile, draw)
    else:
        picture.image(large, caption=name, width="stretch")
    show_explanation(explanation, caption, tile, draw, text_key)


main()
