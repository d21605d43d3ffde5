"""Drawing attention over the photo. Used by both the CLI (--overlay-dir) and the app.

Maps are drawn on the upright photo as uploaded (its own size and aspect ratio), not on the
squashed model input: the model's square input covers the whole photo, so grid cell (r, c)
maps to the same fraction of the photo's height and width.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .attention import attention_entry
from .config import ModelConfig

# A perceptually ordered colour ramp (dark purple -> orange -> pale yellow), like "inferno".
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours from the ramp."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    frac = (position - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[high] * frac).astype(np.uint8)


def upsample(alpha: np.ndarray, size: tuple[int, int], smooth: bool = True) -> np.ndarray:
    """(h, w) attention map -> (H, W) map over a photo of size (W, H), scaled to max 1.

    smooth=True: bicubic upsampling then a Gaussian blur about half a grid cell wide, like the
    paper's figures; smooth=False: blocky nearest-neighbour cells (what the model really sees).
    """
    width, height = size
    grid_h, grid_w = alpha.shape
    alpha = np.asarray(alpha, dtype=np.float32)
    top = alpha.max()
    image = Image.fromarray(alpha / top if top > 0 else alpha, mode="F")
    if not smooth:
        return np.asarray(image.resize((width, height), Image.NEAREST), dtype=np.float32)
    image = image.resize((width, height), Image.BICUBIC)
    # Pillow blurs 8-bit images only; 256 levels are plenty for a display map.
    levels = Image.fromarray((np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8), mode="L")
    levels = levels.filter(ImageFilter.GaussianBlur(0.5 * min(width / grid_w, height / grid_h)))
    heat = np.asarray(levels, dtype=np.float32)
    top = heat.max()
    return heat / top if top > 0 else heat


def soft_overlay(photo: Image.Image, alpha: np.ndarray, smooth: bool = True,
                 opacity: float = 0.6) -> Image.Image:
    """The photo with the attention map blended over it: dimmed where the model does not look."""
    heat = upsample(alpha, photo.size, smooth)[..., None]  # (H, W, 1)
    pixels = np.asarray(photo.convert("RGB"), dtype=np.float32)
    dimmed = pixels * (1.0 - opacity * (1.0 - heat) * 0.8)  # keep attended pixels bright
    weight = opacity * heat
    blended = dimmed * (1.0 - weight) + colorize(heat[..., 0]).astype(np.float32) * weight
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def hard_overlay(photo: Image.Image, alpha: np.ndarray, opacity: float = 0.6) -> Image.Image:
    """The one region hard attention chose (argmax cell) outlined, the distribution faint."""
    faint = soft_overlay(photo, alpha, smooth=False, opacity=opacity * 0.5)
    row, col = np.unravel_index(int(np.argmax(alpha)), alpha.shape)
    return _outline(faint, alpha.shape, (row, col, row, col))


def window_overlay(photo: Image.Image, alpha: np.ndarray, smooth: bool = True,
                   opacity: float = 0.6) -> Image.Image:
    """Local attention's map with its window outlined: the cells it could look at (the map
    is exactly zero outside them, and positive inside)."""
    rows, cols = np.nonzero(alpha > 0)
    if not len(rows):
        return soft_overlay(photo, alpha, smooth, opacity)
    return _outline(soft_overlay(photo, alpha, smooth, opacity), alpha.shape,
                    (rows.min(), cols.min(), rows.max(), cols.max()))


def _outline(image: Image.Image, grid: tuple[int, int], cells: tuple[int, int, int, int]
             ) -> Image.Image:
    """A rectangle around grid cells (top row, left column, bottom row, right column)."""
    grid_h, grid_w = grid
    top, left, bottom, right = cells
    width, height = image.size
    box = (left * width / grid_w, top * height / grid_h,
           (right + 1) * width / grid_w - 1, (bottom + 1) * height / grid_h - 1)
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(width, height) / 100))
    draw.rectangle(box, outline=(0, 0, 0), width=line + 2)
    draw.rectangle(box, outline=(80, 255, 80), width=line)
    return image


def map_style(config: ModelConfig) -> dict[str, bool]:
    """How a model's maps are drawn (word_overlays' flags), as its attention registered:
    "cell" (hard attention) shows its distribution over cells with the most likely cell
    outlined, in every hard mode; "window" (local attention) outlines its window; "heatmap"
    the rest."""
    overlay = attention_entry(config.attention).overlay
    return {"hard": overlay == "cell", "window": overlay == "window"}


def word_overlays(photo: Image.Image, alphas: np.ndarray, hard: bool = False,
                  smooth: bool = True, opacity: float = 0.6, window: bool = False
                  ) -> list[Image.Image]:
    """One overlay per word, from (T, h, w) maps: hard attention's chosen cell, local
    attention's window (window=True), or the soft map."""
    if hard:
        return [hard_overlay(photo, a, opacity) for a in alphas]
    if window:
        return [window_overlay(photo, a, smooth, opacity) for a in alphas]
    return [soft_overlay(photo, a, smooth, opacity) for a in alphas]


def overlay_grid(photo: Image.Image, words: Sequence[str], alphas: np.ndarray,
                 hard: bool = False, smooth: bool = True, opacity: float = 0.6,
                 tile_width: int = 256, columns: int = 5, window: bool = False) -> Image.Image:
    """The photo followed by one titled overlay per word, in a grid, as one image."""
    if len(words) != len(alphas):
        raise ValueError(f"{len(words)} words but {len(alphas)} attention maps")
    scale = tile_width / photo.width
    tile_height = max(1, round(photo.height * scale))
    small = photo.convert("RGB").resize((tile_width, tile_height), Image.BICUBIC)
    tiles = [("(photo)", small)] + list(zip(words, word_overlays(small, alphas, hard, smooth, opacity,
                                                                 window)))
    font = ImageFont.load_default(size=max(12, tile_width // 14))
    title = font.size + 8
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    pad = 4
    sheet = Image.new("RGB", (columns * (tile_width + pad) + pad,
                              rows * (tile_height + title + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (word, tile) in enumerate(tiles):
        x = pad + (index % columns) * (tile_width + pad)
        y = pad + (index // columns) * (tile_height + title + pad)
        draw.text((x + 2, y + 2), word, fill="black", font=font)
        sheet.paste(tile, (x, y + title))
    return sheet
