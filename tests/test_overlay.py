"""Overlays are drawn on the photo as uploaded and put the heat where the attention is."""
import numpy as np
import pytest

from captioner import ModelConfig
from captioner.attention import ATTENTIONS, register_attention
from captioner.overlay import (hard_overlay, map_style, overlay_grid, soft_overlay, upsample,
                               window_overlay)

from conftest import photo


def _peaked(grid=(4, 4), at=(1, 2)):
    alpha = np.full(grid, 0.01, dtype=np.float32)
    alpha[at] = 1.0
    return alpha / alpha.sum()


@pytest.mark.parametrize("smooth", [True, False])
def test_upsampled_map_peaks_on_the_attended_cell(smooth):
    heat = upsample(_peaked(), (400, 200), smooth)
    assert heat.shape == (200, 400) and heat.max() == pytest.approx(1.0)
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert 1 * 50 <= row < 2 * 50 and 2 * 100 <= col < 3 * 100


def test_soft_overlay_keeps_photo_size_and_dims_what_is_not_attended():
    from PIL import Image

    image = Image.new("RGB", (400, 200), (128, 128, 128))
    out = np.asarray(soft_overlay(image, _peaked(), opacity=0.7), dtype=float)
    assert out.shape == (200, 400, 3)
    attended, corner = out[75, 250].sum(), out[190, 10].sum()
    assert attended > 1.5 * corner
    assert corner < 3 * 128  # the unattended corner is dimmed


def test_hard_overlay_outlines_exactly_one_cell():
    image = photo(400, 200)
    out = np.asarray(hard_overlay(image, _peaked(), opacity=0.0))
    green = (out[..., 1] > 200) & (out[..., 0] < 120) & (out[..., 2] < 120)
    rows, cols = np.nonzero(green)
    assert rows.min() >= 50 - 3 and rows.max() <= 100 + 3
    assert cols.min() >= 200 - 3 and cols.max() <= 300 + 3


def test_window_overlay_outlines_the_cells_local_attention_could_see():
    image = photo(400, 200)
    alpha = np.zeros((4, 4), dtype=np.float32)
    alpha[1:3, 2:4] = [[0.1, 0.2], [0.3, 0.4]]  # a window of rows 1-2, columns 2-3
    out = np.asarray(window_overlay(image, alpha, opacity=0.0))
    green = (out[..., 1] > 200) & (out[..., 0] < 120) & (out[..., 2] < 120)
    rows, cols = np.nonzero(green)
    assert rows.min() >= 50 - 3 and rows.max() <= 150 + 3 and rows.max() > 140
    assert cols.min() >= 200 - 3 and cols.max() <= 400 and cols.min() < 210


def test_each_attention_kind_gets_its_drawing():
    assert map_style(ModelConfig(attention="hard")) == {"hard": True, "window": False}
    # every hard mode: the distribution, with the most likely cell outlined
    assert map_style(ModelConfig(attention="hard", hard_inference="expectation"))["hard"] is True
    assert map_style(ModelConfig(attention="local")) == {"hard": False, "window": True}
    assert map_style(ModelConfig(attention="luong-concat")) == {"hard": False, "window": False}


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_the_drawing_is_the_one_the_attention_registered(name):
    overlay = ATTENTIONS[name].overlay
    assert map_style(ModelConfig(attention=name)) == {"hard": overlay == "cell",
                                                      "window": overlay == "window"}


def test_an_unknown_overlay_style_is_refused():
    with pytest.raises(ValueError, match="overlay must be one of"):
        register_attention("sparkles", overlay="sparkles")


def test_grid_has_a_tile_per_word_plus_the_photo():
    image = photo(300, 150)
    alphas = np.stack([_peaked(at=(i % 4, i % 4)) for i in range(6)])
    sheet = overlay_grid(image, ["w"] * 6, alphas, tile_width=100, columns=4)
    assert sheet.width == 4 * 104 + 4
    assert sheet.height > 2 * 50  # two rows of tiles
    with pytest.raises(ValueError, match="6 words but 5"):
        overlay_grid(image, ["w"] * 6, alphas[:5])
