"""Compare: every model on one photo, side by side, each with its word grid and what guided it;
one slider picks the word position in all."""
from __future__ import annotations

import streamlit as st

from captioner import Captioner, CheckpointError, DecodeOptions
from captioner.overlay import map_style, word_overlays
from ui.downloads import caption_json
from ui.grounding import pinned_summary, short_label
from ui.maps import draw_flags, hard_mode_cue, hard_mode_of
from ui.models import Model, ModelSource, describe_model, model_lock, open_model
from ui.sidebar import Settings
from ui.single import TRAINED_ON
from ui.support import confidence_markdown, download_stem, escape_markdown
from ui.tiles import show_tiles

COMPARE_GRID_COLUMNS = 3  # word tiles a row within one model's column


def compared_captions(models: dict[str, ModelSource], digest: str, photo, settings: Settings
                      ) -> dict[str, tuple[Model, object]]:
    """label -> (model, caption), captioned once per photo, model and settings; a model that
    cannot load gets its own message."""
    # Only this photo's results are kept (one entry per model and decoding settings).
    results = {key: value for key, value in st.session_state.get("compare", {}).items()
               if key[0] == digest}
    st.session_state["compare"] = results
    options = settings.options.replace(n_best=settings.options.beam_size)
    encoded = {}  # encoder_key -> the photo through that encoder, once per encoder
    captions = {}
    for label, source in models.items():
        try:
            model = open_model(source)
        except (CheckpointError, OSError) as exc:
            st.error(f"{label}: cannot load the model: {exc}")
            continue
        key = (digest, *model.key, options, settings.seed)
        if key not in results:
            shared = model.captioner.encoder_key
            with model_lock():
                if shared is None or shared not in encoded:
                    encoded[shared] = model.captioner.encode([photo])
                results[key] = model.captioner.caption_encoded(
                    encoded[shared], options_for(model.captioner, options))[0]
        captions[label] = (model, results[key])
    return captions


def options_for(captioner: Captioner, options: DecodeOptions) -> DecodeOptions:
    """The sidebar's options for one compared model: its hard-attention mode and seed belong
    to the models that draw regions (Decoding refuses a mode for any other)."""
    if captioner.decoding.samples_locations:
        return options
    return options.replace(hard_mode=None, seed=None)


def show_column(index: int, label: str, model: Model, caption, settings: Settings, large,
                tile, image_name: str, position: int) -> None:
    """One model: its caption and words (pins with the CNN's confidence), what guided it, the
    overlay at the chosen word position, its word grid, its hypotheses and its download."""
    captioner = model.captioner
    draw = draw_flags(captioner.config, settings.options.hard_mode, settings.smooth,
                      settings.opacity)
    st.subheader(label, anchor=False)
    st.markdown(f"**{escape_markdown(caption.text) or '(empty caption)'}**")
    st.caption(f"Score {caption.score:.3f} · {describe_model(captioner)}")
    if caption.words:
        st.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged,
                                        caption.tags), unsafe_allow_html=True)
    with st.container(key=f"guided_{index}"):
        st.markdown(pinned_summary(caption.tags, caption.tagged) if settings.options.grounding
                    else "Grounding is off: no label guided it.")
    if map_style(captioner.config)["hard"]:
        st.caption(hard_mode_cue(hard_mode_of(settings.options.hard_mode, captioner.config),
                                 settings.seed))
    if position < len(caption.words):
        [picked] = word_overlays(large, caption.alphas[position:position + 1], **draw)
        st.image(picked, width="stretch", output_format="JPEG",
                 caption=f"“{caption.words[position]}” (word {position + 1} of "
                         f"{len(caption.words)})")
    else:
        st.image(large, width="stretch", output_format="JPEG",
                 caption=f"(this caption has {len(caption.words)} words)")
    if caption.words:
        with st.container(key=f"grid_{index}"):
            show_tiles(caption.words, caption.alphas, tile, draw, COMPARE_GRID_COLUMNS)
    if len(caption.alternatives) > 1:
        with st.expander("Other beam hypotheses"):
            st.markdown("\n".join(
                f"{rank}. `{alt.score:.3f}` {escape_markdown(alt.text) or '(empty)'}"
                for rank, alt in enumerate(caption.alternatives[1:], start=2)))
    st.download_button(
        "Caption + maps (JSON)", key=f"download_json_{index}", on_click="ignore",
        mime="application/json",
        file_name=f"{download_stem(image_name)}.{download_stem(model.name.file or label)}"
                  ".caption.json",
        data=caption_json(caption, image_name, model.name, settings.options, settings.seed))


def show_compare(models: dict[str, ModelSource], digest: str, image_name: str, photo, large,
                 tile, settings: Settings) -> None:
    captions = compared_captions(models, digest, photo, settings)
    if not captions:
        return
    longest = max(len(caption.words) for _, caption in captions.values())
    position = 0
    if longest > 1:
        position = st.select_slider("Word position (all models)", options=range(longest),
                                    key="compare_word", format_func=lambda i: f"word {i + 1}")
    for index, (column, (label, (model, caption))) in enumerate(
            zip(st.columns(len(captions)), captions.items())):
        with column:
            show_column(index, label, model, caption, settings, large, tile, image_name,
                        position)
    first = next(iter(captions.values()))[1]
    if first.imagenet:
        st.markdown("**What the CNN saw** (ImageNet top 5): " + " · ".join(
            f"{escape_markdown(short_label(label.name))} {label.probability:.0%}"
            for label in first.imagenet))
        st.caption(TRAINED_ON)
