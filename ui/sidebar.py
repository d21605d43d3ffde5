"""The sidebar: the model, how to decode, how to draw, and compare mode. Every input is read
before the model loads, so a model that fails to load keeps the photo and settings; the few
that depend on the model (hard attention's mode and seed, smoothing) are filled in after."""
from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from captioner import Captioner
from captioner.options import DEFAULT_OPTIONS, HARD_MODES, MAX_CAPTION_LENGTH, DecodeOptions
from captioner.overlay import map_style
from ui.grounding import thresholds_sentence
from ui.maps import HARD_MODES_SHOWN, draw_flags, hard_mode_note
from ui.models import ModelSource, model_choice

MAX_SEED = 2**31 - 1


class Inputs(NamedTuple):
    """What the sidebar read before the model loaded, and the places left for the rest."""

    source: ModelSource
    model_info: object  # a sidebar container: the model's description
    hard_box: object  # a sidebar container: hard attention's mode and seed
    smooth_box: object  # a sidebar container: the smoothing toggle
    options: DecodeOptions  # without the hard mode, which needs the model
    opacity: float
    compare: bool


class Settings(NamedTuple):
    """Everything the page needs to caption and draw with the loaded model."""

    options: DecodeOptions
    smooth: bool
    opacity: float
    compare: bool

    @property
    def seed(self) -> int | None:
        """The seed of hard attention's draws in sample mode; None otherwise."""
        return self.options.seed

    def draw(self, captioner: Captioner) -> dict:
        """word_overlays' flags for this model's maps."""
        return draw_flags(captioner.config, self.options.hard_mode, self.smooth, self.opacity)


def sample_again() -> None:
    st.session_state["hard_seed"] = (st.session_state.get("hard_seed", 0) + 1) % (MAX_SEED + 1)


def read_inputs() -> Inputs:
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
        help="The encoder's own ImageNet classifier tags the photo. "
             + thresholds_sentence(DEFAULT_OPTIONS) + " Off: the caption model alone.")
    hard_box = st.sidebar.container()
    st.sidebar.header("Display")
    smooth_box = st.sidebar.container()
    opacity = st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="opacity")
    st.sidebar.header("Compare")
    compare = st.sidebar.toggle("Every model side by side", key="compare_mode",
                                help="The shipped models and the chosen checkpoint (when it is "
                                     "not a shipped one) caption the same photo; one slider "
                                     "picks the word.")
    options = DEFAULT_OPTIONS.replace(beam_size=beam, max_length=max_length,
                                      block_repeats=block_repeats, grounding=grounding)
    return Inputs(source, model_info, hard_box, smooth_box, options, opacity, compare)


def model_settings(inputs: Inputs, captioner: Captioner, description: str) -> Settings:
    """The model-dependent inputs: hard attention's mode (and seed, when sampling) and the
    smoothing toggle; notes on what the maps show."""
    inputs.model_info.caption(description)
    style = map_style(captioner.config)
    hard = style["hard"]
    smooth = inputs.smooth_box.toggle(
        "Smooth attention maps", value=True, key="smooth", disabled=hard and not inputs.compare,
        help="Soft attention only: blur the grid like the paper's figures; off shows the cells "
             "the model really sees.")
    hard_mode, seed = DEFAULT_OPTIONS.hard_mode, None
    if hard:
        box = inputs.hard_box
        hard_mode = box.selectbox(
            "Hard attention: what the decoder reads", HARD_MODES, key="hard_mode",
            index=HARD_MODES.index(DEFAULT_OPTIONS.hard_mode or HARD_MODES[0]),
            format_func=lambda mode: HARD_MODES_SHOWN[mode].label)
        if hard_mode == "sample":
            st.session_state.setdefault("hard_seed", 0)
            seed = int(box.number_input(
                "Seed", min_value=0, max_value=MAX_SEED, step=1, key="hard_seed",
                help="Sample mode draws one cell a word from torch's generator seeded with "
                     "this: the same seed gives the same caption and the same explained scores."))
            box.button("Sample again", key="sample_again", on_click=sample_again,
                       icon=":material/casino:", help="Draw again, with the next seed.")
        box.caption(hard_mode_note(hard_mode, seed) + " Trained by sampling one cell a word "
                    "(REINFORCE).")
    if style["window"] and not inputs.compare:
        inputs.smooth_box.caption("Local attention: the outline is the window around the "
                                  "centre it predicted for the word; it sees nothing outside it.")
    options = inputs.options.replace(hard_mode=hard_mode, seed=seed)
    return Settings(options, smooth, inputs.opacity, inputs.compare)
