"""How the page draws a model's attention maps, and what it says they are: pure, no Streamlit.

Hard attention decodes in one of three modes (DecodeOptions.hard_mode); each changes what the
decoder reads for a word, so each is drawn its own way: the distribution alone (expectation),
the one cell used outlined over a faint distribution (argmax), the distribution a cell was drawn
from (sample: the drawn cell itself is not part of a Caption, so none is outlined).
"""
from __future__ import annotations

from typing import NamedTuple

from captioner.config import ModelConfig
from captioner.overlay import map_style


class HardMode(NamedTuple):
    label: str  # the mode selector's option
    icon: str  # Streamlit's bundled icon font: shown beside the sentence and over the overlays
    says: str  # one sentence: what the mode changes and what the map shows
    cue: str  # over the overlays: what the drawing marks


HARD_MODES_SHOWN = {
    "expectation": HardMode(
        "Expectation over cells", ":material/blur_on:",
        "Expectation: the decoder reads the map's weighted average of every cell; the map shown "
        "is that distribution, with no cell outlined.",
        "Expectation: the map is the weighting of the cells the decoder averaged."),
    "argmax": HardMode(
        "The most likely cell", ":material/crop_free:",
        "Argmax: the decoder reads the single most likely cell, outlined; the faint map is the "
        "distribution it was picked from.",
        "Argmax: the outlined cell is the one the decoder read."),
    "sample": HardMode(
        "A sampled cell (seeded)", ":material/casino:",
        "Sample: the decoder reads one cell per word drawn from the map, so the caption changes "
        "with the seed; the map shown is the distribution each cell was drawn from (the drawn "
        "cell is not recorded, so none is outlined).",
        "Sample: the faint map is what each word's cell was drawn from."),
}


def hard_mode_of(mode: str | None, config: ModelConfig) -> str:
    """The hard mode a decoding uses: the call's, else the model file's own."""
    return mode or config.hard_inference


def hard_mode_note(mode: str, seed: int | None = None) -> str:
    """The icon and sentence for a hard-attention mode, with the seed in sample mode."""
    shown = HARD_MODES_SHOWN[mode]
    seed_note = f" Seed {seed}." if mode == "sample" and seed is not None else ""
    return f"{shown.icon} {shown.says}{seed_note}"


def hard_mode_cue(mode: str, seed: int | None = None) -> str:
    """The short line over the overlays: the icon and what the drawing marks."""
    shown = HARD_MODES_SHOWN[mode]
    seed_note = f" Seed {seed}." if mode == "sample" and seed is not None else ""
    return f"{shown.icon} {shown.cue}{seed_note}"


def draw_flags(config: ModelConfig, hard_mode: str | None, smooth: bool, opacity: float
               ) -> dict:
    """word_overlays' and overlay_grid's keyword flags for a model's maps in a hard mode:
    argmax outlines the cell it used; expectation and sample show the distribution cell by cell
    (sample fainter: one cell was drawn from it); soft and local maps as their attention
    registered (captioner.overlay.map_style)."""
    style = map_style(config)
    if not style["hard"]:
        return {**style, "smooth": smooth, "opacity": opacity}
    hard_mode = hard_mode_of(hard_mode, config)
    if hard_mode == "argmax":
        return {"hard": True, "window": False, "smooth": False, "opacity": opacity}
    return {"hard": False, "window": False, "smooth": False,
            "opacity": opacity if hard_mode == "expectation" else opacity * 0.6}
