"""A grid of titled overlays, one per word: the single photo's, an explained caption's and
each compared model's."""
from __future__ import annotations

import streamlit as st

from captioner.overlay import word_overlays

GRID_COLUMNS = 5


def show_tiles(words: list[str], alphas, tile, draw: dict, columns: int = GRID_COLUMNS) -> None:
    """One overlay per word, `columns` to a row, each titled by its word."""
    tiles = list(zip(words, word_overlays(tile, alphas, **draw)))
    for start in range(0, len(tiles), columns):
        for column, (word, image) in zip(st.columns(columns), tiles[start:start + columns]):
            column.image(image, caption=word, width="stretch", output_format="JPEG")
