"""Several photos: a table (thumbnail, file, caption, score, milliseconds, verdict, pinned words)
with CSV and JSON downloads; a bad file gets its own message and the rest are captioned."""
from __future__ import annotations

import hashlib

import streamlit as st

from captioner import ImageError, load_image
from captioner.inference import PHOTOS_PER_CALL, in_chunks
from ui.downloads import batch_csv, batch_json, batch_row, thumbnail_uri
from ui.models import Model, model_lock
from ui.sidebar import Settings
from ui.support import escape_markdown

COLUMNS = {
    "thumbnail": st.column_config.ImageColumn("Photo", width="small"),
    "file": st.column_config.TextColumn("File"),
    "caption": st.column_config.TextColumn("Caption", width="large"),
    "score": st.column_config.NumberColumn("Score", format="%.3f"),
    "milliseconds": st.column_config.NumberColumn("ms", format="%.0f",
                                                  help="Preprocessing, encoder and decoder"),
    "verdict": st.column_config.TextColumn(
        "Verdict", help="How far to trust the caption: probably right, unsure or a guess"),
    "p_wrong": st.column_config.NumberColumn(
        "Wrong?", format="percent",
        help="The calibrated chance that the caption invents someone or something or misses "
             "the main object"),
    "pinned": st.column_config.TextColumn(
        "Pinned", help="Words a label of the CNN placed in the caption"),
}


def captioned_files(model: Model, files: list[tuple[bytes, str]], settings: Settings
                    ) -> list[tuple[bytes, str, object]]:
    """(bytes, name, caption and thumbnail, or a message) per file; each file captioned once per
    model and settings in a session, the new ones up to PHOTOS_PER_CALL in one batched call."""
    # Only the current files' results are kept: a long session does not pile up old ones.
    previous = st.session_state.get("batch", {})
    results = st.session_state["batch"] = {}
    keys, waiting = [], []
    for data, name in files:
        key = (hashlib.sha256(data).hexdigest(), model.key, settings.options, settings.seed)
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
        with st.spinner(f"Captioning {len(chunk)} photo(s)…"), model_lock():
            captions = model.captioner.caption([photo for _, photo in chunk], settings.options)
        for (key, photo), caption in zip(chunk, captions):
            results[key] = (caption, thumbnail_uri(photo))
    return [(data, name, results[key]) for key, (data, name) in zip(keys, files)]


def show_batch(model: Model, files: list[tuple[bytes, str]], settings: Settings
               ) -> tuple[bytes, str] | None:
    """The table and its downloads. Returns the file of the row the user picked, whose
    overlays are shown below."""
    rows, good = [], []
    for data, name, result in captioned_files(model, files, settings):
        if isinstance(result, str):
            st.error(f"**{escape_markdown(name)}**: cannot use this file. {result}.")
            continue
        caption, thumbnail = result
        rows.append({"thumbnail": thumbnail, **batch_row(name, caption)})
        good.append((data, name))
    if not rows:
        return None
    st.subheader(f"{len(rows)} photos captioned", anchor=False)
    st.dataframe(rows, key="batch_table", hide_index=True, width="stretch", row_height=64,
                 column_order=tuple(COLUMNS), column_config=COLUMNS)
    st.caption("Verdict and Wrong?: the model file's calibrated confidence, as on a photo's own "
               "page (a file without one marks only a guess: no label guided the caption and "
               "the model was unsure of its words). Pinned: the words a label of the CNN placed.")
    left, right = st.columns(2)
    left.download_button("Table (CSV)", key="download_batch_csv", on_click="ignore",
                         mime="text/csv", file_name="captions.csv", data=batch_csv(rows))
    right.download_button("Table (JSON)", key="download_batch_json", on_click="ignore",
                          mime="application/json", file_name="captions.json",
                          data=batch_json(rows, model.name, settings.options, settings.seed))
    picked = st.selectbox("Open a photo's overlays", range(len(rows)), index=None,
                          key="batch_pick", placeholder="Choose a row of the table",
                          format_func=lambda i: f"{i + 1}. {rows[i]['file']}: {rows[i]['caption']}")
    if picked is None:
        st.info("Choose a row to see where each of its words looked.")
        return None
    return good[picked]
