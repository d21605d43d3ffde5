"""One photo: its caption, how sure the model was of each word, what the CNN saw and what guided
the caption, where each word looked, the downloads, and "explain a caption"."""
from __future__ import annotations

import streamlit as st

from captioner.inference import Caption
from captioner.overlay import map_style, word_overlays
from ui.downloads import caption_json, grid_png
from ui.explain import explained, follow_caption, show_explanation, text_key
from ui.grounding import grounding_markdown, spread_line
from ui.maps import hard_mode_cue, hard_mode_of
from ui.models import Model, model_lock
from ui.photos import encoded_photo, photo_key
from ui.sidebar import Settings
from ui.support import confidence_markdown, download_stem, escape_markdown, format_timing
from ui.tiles import show_tiles

# Why a photo of a cat can be captioned "a brown dog": what the caption model has seen.
TRAINED_ON = ("The captions come from a model trained on Flickr8k's photos (mostly people "
              "and dogs outdoors) and on COCO's caption text without photos, reading what its "
              "word detectors and the CNN's labels say the photo holds. A pinned word (blue) shows its "
              "label's confidence from the CNN, not the caption model's probability of the "
              "word: a word the caption model learnt late can be unlikely to it even where the "
              "CNN is sure.")
GUESS_WARNING = ("**This caption is a guess.** No label of the CNN was sure enough to guide it, "
                 "and the caption model was unsure of its words: the photo is probably unlike "
                 "the Flickr8k photos (people and dogs outdoors) it learnt from.")


VERDICT_TEXT = {
    "probably right": "**Probably right.**",
    "unsure": "**Unsure:** this caption may be wrong.",
    "a guess": "**A guess:** this caption is probably wrong.",
}


def show_verdict(verdict) -> None:
    """The model file's calibrated confidence (captioner.confidence), in plain words and why."""
    why = "; ".join(verdict.reasons)
    text = (f"{VERDICT_TEXT[verdict.verdict]} Chance it invents someone or something or misses "
            f"the main object: {verdict.p_wrong:.0%}" + (f" ({escape_markdown(why)})." if why
                                                          else "."))
    if verdict.verdict == "probably right":
        st.success(text, icon=":material/check_circle:")
    elif verdict.verdict == "unsure":
        st.warning(text, icon=":material/warning:")
    else:
        st.error(text, icon=":material/help:")


def captioned(model: Model, key: tuple, photo, settings: Settings) -> Caption:
    """Caption once per photo, model, decoding options and seed; display changes reuse it."""
    wanted = (key, settings.options, settings.seed)
    saved = st.session_state.get("caption")
    if saved is None or saved[0] != wanted:
        with st.spinner("Captioning…"):
            encoded = encoded_photo(model.captioner, key, photo)
            with model_lock():
                # Every hypothesis of the beam is listed under the caption.
                caption = model.captioner.caption_encoded(
                    encoded, settings.options.replace(n_best=settings.options.beam_size))[0]
        saved = (wanted, caption)
        st.session_state["caption"] = saved
    return saved[1]


def what_the_cnn_saw(caption: Caption, settings: Settings) -> None:
    """The encoder's ImageNet top 5, what it is sure of at a coarser level, and the labels
    that guided the caption, in the CNN's own numbers."""
    with st.container(key="imagenet"):
        st.markdown("**What the CNN saw**: the encoder's own ImageNet classifier, top 5")
        st.markdown("\n".join(f"- {escape_markdown(label.name)} · {label.probability:.0%}"
                              for label in caption.imagenet))
        spread = spread_line(caption.imagenet)
        if spread:
            st.markdown(spread)
    with st.container(key="guided"):
        if settings.options.grounding:
            st.markdown(grounding_markdown(caption.tags, caption.words, caption.word_probs,
                                           caption.tagged, caption.imagenet, settings.options))
        else:
            st.markdown("Grounding is off: no label guided the caption.")
    st.caption(TRAINED_ON)


def show_caption(model: Model, settings: Settings, caption: Caption, image_name: str, photo,
                 explanation=None) -> None:
    with st.container(key="caption"):
        st.header(escape_markdown(caption.text) if caption.words else "(empty caption)",
                  anchor=False)
        verdict = caption.confidence
        if verdict is not None:
            show_verdict(verdict)
        elif caption.is_guess:
            st.warning(GUESS_WARNING, icon="❔")
        st.markdown(f"Score **{caption.score:.3f}** · log-probability {caption.log_prob:.3f} · "
                    f"{len(caption.words)} words")
    if caption.words:
        with st.container(key="confidence"):
            st.markdown("**How sure the model was of each word**: p(word | photo, the words "
                        "before it); a pinned word shows its label's confidence from the CNN")
            st.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged,
                                            caption.tags), unsafe_allow_html=True)
    if len(caption.alternatives) > 1:
        with st.container(key="alternatives"):
            st.markdown("**Other beam hypotheses**")
            st.markdown("\n".join(
                f"{rank}. `{alt.score:.3f}` {escape_markdown(alt.text) or '(empty)'}"
                for rank, alt in enumerate(caption.alternatives[1:], start=2)))
            with st.expander("Their words' probabilities"):
                st.markdown("\n\n".join(
                    f"{rank}. {confidence_markdown(alt.words, alt.word_probs) or '(empty)'}"
                    for rank, alt in enumerate(caption.alternatives[1:], start=2)),
                    unsafe_allow_html=True)
    if caption.imagenet:
        what_the_cnn_saw(caption, settings)
    st.caption(f"Timing: {format_timing(caption.timing)}")
    stem = download_stem(image_name)
    draw = settings.draw(model.captioner)
    left, right = st.columns(2)
    left.download_button(
        "Overlay grid (PNG)", key="download_grid", on_click="ignore", mime="image/png",
        file_name=f"{stem}.attention.png",
        data=lambda: grid_png(photo, caption, **draw))
    right.download_button(
        "Caption + maps (JSON)", key="download_json", on_click="ignore",
        mime="application/json", file_name=f"{stem}.caption.json",
        data=caption_json(caption, image_name, model.name, settings.options, settings.seed,
                          explanation if not isinstance(explanation, str) else None))


def show_attention(caption: Caption, large, draw: dict, note: str | None) -> None:
    words = caption.words
    index = 0
    if len(words) > 1:
        # Numbered labels: the slider's front end cannot tell apart two options with the same
        # label, and captions repeat words ("a dog and a cat").
        index = st.select_slider("Word", options=range(len(words)),
                                 format_func=lambda i: f"{i + 1}. {words[i]}")
    if note:
        st.caption(note)
    [picked] = word_overlays(large, caption.alphas[index:index + 1], **draw)
    st.image(picked, width="stretch",
             caption=f"“{words[index]}” (word {index + 1} of {len(words)})",
             output_format="JPEG")


def show_single(model: Model, settings: Settings, digest: str, name: str, photo, large,
                tile) -> None:
    key = photo_key(digest, model)
    caption = captioned(model, key, photo, settings)
    # The typed caption is read first, so the JSON download above it can hold it too.
    box = text_key(key)
    explanation = explained(model, key, photo, follow_caption(box, caption), settings)
    draw = settings.draw(model.captioner)
    note = (hard_mode_cue(hard_mode_of(settings.options.hard_mode, model.captioner.config),
                          settings.seed)
            if map_style(model.captioner.config)["hard"] else None)
    picture, text = st.columns([3, 2], gap="large")
    with text:
        show_caption(model, settings, caption, name, photo, explanation)
    if caption.words:
        with picture:
            show_attention(caption, large, draw, note)
        st.subheader("Where each word looked", anchor=False)
        show_tiles(caption.words, caption.alphas, tile, draw)
    else:
        picture.image(large, caption=name, width="stretch")
    show_explanation(model, settings, explanation, caption, tile, box)
