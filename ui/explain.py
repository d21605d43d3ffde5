"""Explain a caption: a typed caption read by the model word by word (teacher forcing), beside
its own caption. In hard attention's sample mode the reading draws its cells with the sidebar's
seed, so the same text always scores the same."""
from __future__ import annotations

import hashlib

import streamlit as st

from captioner.inference import Caption, Explanation
from captioner.overlay import map_style
from ui.maps import HARD_MODES_SHOWN
from ui.models import Model, model_lock
from ui.photos import encoded_photo
from ui.sidebar import Settings
from ui.support import confidence_markdown, explanation_markdown, unknown_words_line
from ui.tiles import show_tiles

MAX_TYPED_CHARACTERS = 400  # a typed caption; the model reads at most 50 words of it


def text_key(photo_key: tuple) -> str:
    """The session-state key of the text box for one photo on one model."""
    return "explain_" + hashlib.sha256(repr(photo_key).encode()).hexdigest()[:16]


def follow_caption(key: str, caption: Caption) -> str:
    """The box follows the model's caption (new settings, a new caption) until the user edits
    it; returns the text to explain."""
    suggested = f"{key}_suggested"
    if st.session_state.get(key) in (None, st.session_state.get(suggested)):
        st.session_state[key] = caption.text
    st.session_state[suggested] = caption.text
    return st.session_state[key]


def explained(model: Model, key: tuple, photo, text: str, settings: Settings
              ) -> Explanation | str | None:
    """The typed caption read by the model (None when nothing is typed; a message for text it
    cannot read), once per text, photo, model and settings in a session."""
    if not text.strip():
        return None
    cache_key = (key, text, settings.options, settings.seed)
    saved = st.session_state.get("explained")
    if saved is not None and saved[0] == cache_key:
        return saved[1]
    encoded = encoded_photo(model.captioner, key, photo)
    try:
        with model_lock():
            result = model.captioner.explain(encoded, text, settings.options)
    except ValueError as exc:
        result = str(exc)
    st.session_state["explained"] = (cache_key, result)
    return result


def scoring_mode(model: Model, settings: Settings) -> str:
    """How the reading attends, said on the page."""
    config = model.captioner.config
    if not map_style(config)["hard"]:
        return (f"Read with {config.attention} attention and the sidebar's decoding settings: "
                "no draws, the same numbers every time.")
    mode = settings.options.hard_mode
    if mode == "sample":
        return (f"Read with hard attention in sample mode, seed {settings.seed}: each word's cell "
                "is drawn with that seed, so the same text always scores the same (another seed, "
                "other numbers). The caption above was drawn during beam search, so its own "
                "words can score differently here.")
    return (f"Read with hard attention in {mode} mode "
            f"({HARD_MODES_SHOWN[mode].label.lower()}): no draws, the same numbers every time.")


def show_explanation(model: Model, settings: Settings, explanation, caption: Caption, tile,
                     key: str) -> None:
    """The user's text beside the model's own caption, word by word."""
    st.subheader("Explain a caption", anchor=False)
    st.text_input("Type a caption, or edit the model's, to see how likely the model finds "
                  "each word and where it looks for it (teacher forcing)", key=key,
                  max_chars=MAX_TYPED_CHARACTERS)
    if explanation is None:
        st.info("Type a caption above.")
        return
    if isinstance(explanation, str):
        st.warning(f"Cannot read that caption: {explanation}.")
        return
    st.caption(scoring_mode(model, settings))
    ours, theirs = st.columns(2)
    ours.markdown("**The model's caption**")
    ours.markdown(confidence_markdown(caption.words, caption.word_probs, caption.tagged,
                                      caption.tags) or "(empty caption)",
                  unsafe_allow_html=True)
    theirs.markdown(f"**Your caption** · log-probability {explanation.log_prob:.2f} "
                    f"(the model's own: {caption.log_prob:.2f})")
    with theirs.container(key="explanation"):
        st.markdown(explanation_markdown(explanation), unsafe_allow_html=True)
    unknown = unknown_words_line(explanation)
    if unknown:
        with theirs.container(key="unknown_words"):
            st.markdown(unknown)
    sampled = settings.seed is not None  # hard attention's sample mode
    if explanation.words == caption.words and not sampled:
        st.caption("The model's own words: where it looks for each is shown above.")
        return
    if explanation.words == caption.words:
        st.caption(f"The model's own words, read again with seed {settings.seed}: where each "
                   "cell was drawn from.")
    show_tiles(explanation.words, explanation.alphas, tile, settings.draw(model.captioner))
