"""What sets each attention variant apart: static ignores the state, Luong's decoder feeds its
attentional state back (or not), local attends only inside its window."""
import pytest
import torch

from captioner import build_decoder
from captioner.attention import ATTENTIONS, LocalAttention
from captioner.luong import LuongDecoder

from conftest import tiny_config


def _features(batch=2, side=5, dim=16):
    return torch.randn(batch, side * side, dim)


def test_the_registry_names_each_variant_with_the_state_it_scores_with():
    queries = {name: entry.query for name, entry in ATTENTIONS.items()}
    assert {k: queries[k] for k in ("soft", "hard", "static")} == dict.fromkeys(
        ("soft", "hard", "static"), "previous")
    assert {k: queries[k] for k in ("luong-dot", "luong-general", "luong-concat", "local")} == \
        dict.fromkeys(("luong-dot", "luong-general", "luong-concat", "local"), "current")


@pytest.mark.parametrize("kind", ["static", "soft"])
def test_static_attention_weights_do_not_change_while_the_caption_is_written(vocab, kind):
    decoder = build_decoder(tiny_config(vocab, kind)).eval()
    for p in decoder.parameters():  # large weights, so a moving map would show
        torch.nn.init.normal_(p, std=0.5)
    caption = torch.tensor([vocab.encode(["two", "dogs", "run", "on", "the", "beach"])])
    with torch.inference_mode():
        alphas = decoder(_features(batch=1), caption).alphas[0]  # (T, L)
    unchanged = torch.allclose(alphas, alphas[:1].expand_as(alphas))
    assert unchanged == (kind == "static")  # soft's previous state is what moves its map


@pytest.mark.parametrize("kind", ["luong-dot", "luong-general", "luong-concat", "local"])
def test_input_feeding_passes_the_attentional_state_to_the_next_step(vocab, kind):
    fed = build_decoder(tiny_config(vocab, kind)).eval()
    assert isinstance(fed, LuongDecoder) and fed.feed_gates is not None
    memory = fed.prepare(_features(), decoding=True)
    state = fed.init_state(memory)
    assert torch.equal(state.attentional, torch.zeros_like(state.h))  # h~_0 = 0
    tokens = torch.tensor([vocab.start_id] * 2)
    out = fed.step(tokens, state, memory)
    assert out.state.attentional is not None and out.state.attentional.abs().sum() > 0
    # a different h~_{t-1} changes the next word's scores: the LSTM reads it
    nudged = out.state._replace(attentional=out.state.attentional + 0.5)
    assert not torch.allclose(fed.step(tokens, out.state, memory).logits,
                              fed.step(tokens, nudged, memory).logits)

    plain = build_decoder(tiny_config(vocab, kind, input_feeding=False)).eval()
    assert plain.feed_gates is None
    assert plain.init_state(plain.prepare(_features())).attentional is None
    assert not any("feed" in name for name in plain.state_dict())


def test_local_attention_is_zero_outside_its_window_and_centred_where_it_says(vocab):
    config = tiny_config(vocab, "local", local_window=1.0)
    attention = LocalAttention(16, 20, 14, window=1.0)
    features = _features(batch=3, side=5)
    hidden = torch.randn(12, 20) * 3  # 4 rows per image, spread-out centres
    out = attention(features, attention.project(features), hidden)
    centre = attention.centre(hidden, 5)
    assert ((centre >= 0) & (centre <= 5)).all()
    cells = torch.arange(5) + 0.5
    for row in range(12):
        inside = (((cells.view(5, 1) - centre[row, 0]).abs() <= 1.0)
                  & ((cells.view(1, 5) - centre[row, 1]).abs() <= 1.0)).flatten()
        assert 1 <= int(inside.sum()) <= 9  # at most 3x3 cells for D = 1
        assert (out.weights[row][~inside] == 0).all()
        assert (out.weights[row][inside] > 0).all()
    assert torch.allclose(out.weights.sum(1), torch.ones(12))
    assert config.local_window == 1.0


def test_local_attention_learns_where_to_look_through_the_gaussian():
    attention = LocalAttention(16, 20, 14, window=2.0)
    features = _features(batch=2, side=5)
    out = attention(features, attention.project(features), torch.randn(2, 20))
    (out.context ** 2).sum().backward()
    position_grads = [p.grad for p in attention.position.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in position_grads)


def test_local_attention_needs_a_square_grid_and_a_window_of_half_a_cell(vocab):
    attention = LocalAttention(16, 20, 14, window=2.0)
    features = torch.randn(1, 6, 16)
    with pytest.raises(ValueError, match="square grid"):
        attention(features, attention.project(features), torch.randn(1, 20))
    with pytest.raises(ValueError, match="local_window"):
        tiny_config(vocab, "local", local_window=0.25)
