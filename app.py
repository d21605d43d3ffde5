"""Streamlit app: caption a photo and see where each word looked.

    streamlit run app.py

The entry point only: the page's parts are in ui/ by what they show (ui.single one photo,
ui.explain a typed caption, ui.compare every model side by side, ui.table several photos), the
sidebar in ui.sidebar, and models in ui.models: loaded once per process and shared, read-only, by
every session. CAPTIONER_CHECKPOINT=path makes a checkpoint file the default model;
CAPTIONER_MODEL_DIR=folder offers that folder's .pt files by name; a visitor may also upload a
checkpoint (read with weights_only, size-limited). The page never takes a server path.
"""
from __future__ import annotations

import streamlit as st

from captioner import ImageError
from ui.compare import show_compare
from ui.models import available_models, checkpoint_upload_mb, describe_model, load_model
from ui.photos import choose_photos, decoded_photo
from ui.sidebar import model_settings, read_inputs
from ui.single import show_single
from ui.table import show_batch

# A photo upload's limit, in MB. server.maxUploadSize (.streamlit/config.toml) is the larger
# checkpoint uploads' limit (shipped models are 21 MB); the smaller of the two applies to photos.
PHOTO_UPLOAD_MB = 20


def main() -> None:
    st.set_page_config(page_title="Show, attend and tell", layout="wide")
    st.title("Show, attend and tell", anchor=False)
    st.markdown("Caption a photo and see where the model looked for every word.")
    # Every input first, so a model that fails to load keeps the photo and settings.
    inputs = read_inputs()
    chosen = choose_photos(min(PHOTO_UPLOAD_MB, checkpoint_upload_mb()))
    model = load_model(inputs.source)
    settings = model_settings(inputs, model.captioner, describe_model(model.captioner))
    if not chosen:
        st.info("Upload a photo or pick an example to caption it.")
        return
    if len(chosen) > 1:
        picked = show_batch(model, chosen, settings)
        if picked is None:
            return
        st.divider()
        chosen = [picked]
    [(data, name)] = chosen
    try:
        digest, photo, large, tile = decoded_photo(data, name)
    except ImageError as exc:
        st.error(f"Cannot use this file. {exc}. Upload another photo (JPEG, PNG, WebP, BMP or "
                 "GIF).")
        return
    if settings.compare:
        show_compare(available_models(inputs.source), digest, name, photo, large, tile, settings)
    else:
        show_single(model, settings, digest, name, photo, large, tile)


main()
