"""DecodeOptions: one object of decoding defaults, validated once; hard-attention modes chosen
per call without touching the shared model."""
import dataclasses

import pytest
import torch

from captioner import build_decoder
from captioner.options import DEFAULT_OPTIONS, HARD_MODES, DecodeOptions
from captioner.search import search
from conftest import tiny_config


@pytest.mark.parametrize("changes, field", [
    ({"beam_size": 0}, "beam_size"), ({"beam_size": 21}, "beam_size"),
    ({"n_best": 4, "beam_size": 3}, "n_best"), ({"max_length": 0}, "max_length"),
    ({"max_length": 51}, "max_length"), ({"length_penalty": -1.0}, "length_penalty"),
    ({"repeat_ngram": -1}, "repeat_ngram"), ({"repeat_penalty": -0.5}, "repeat_penalty"),
    ({"hard_mode": "median"}, "hard_mode")])
def test_bad_options_are_refused_at_once(changes, field):
    with pytest.raises(ValueError, match=field):
        DecodeOptions(**changes)


def test_options_are_frozen_and_replace_returns_a_new_object():
    changed = DEFAULT_OPTIONS.replace(beam_size=5)
    assert changed.beam_size == 5 and DEFAULT_OPTIONS.beam_size == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_OPTIONS.beam_size = 4


def test_keyword_shorthand_equals_passing_the_object(vocab):
    torch.manual_seed(0)
    decoder = build_decoder(tiny_config(vocab)).eval()
    features = torch.randn(3, 9, 16)
    with torch.inference_mode():
        by_object = search(decoder, features, DecodeOptions(beam_size=4, max_length=7))
        by_keywords = search(decoder, features, beam_size=4, max_length=7)
    assert [h[0].tokens for h in by_object] == [h[0].tokens for h in by_keywords]


def _hard(vocab, mode: str):
    torch.manual_seed(0)
    decoder = build_decoder(tiny_config(vocab, "hard", hard_inference=mode)).eval()
    for p in decoder.parameters():  # large weights: the modes then give different captions
        torch.nn.init.normal_(p, std=0.5)
    return decoder


@pytest.mark.parametrize("mode", ["expectation", "argmax"])
def test_a_hard_mode_per_call_equals_a_model_saved_with_that_mode(vocab, mode):
    saved_as_argmax = _hard(vocab, "argmax" if mode == "expectation" else "expectation")
    saved_as_mode = _hard(vocab, mode)
    features = torch.randn(6, 9, 16)
    with torch.inference_mode():
        asked = search(saved_as_argmax, features, beam_size=3, hard_mode=mode)
        saved = search(saved_as_mode, features, beam_size=3, hard_mode=None)  # its own
    assert [h[0].tokens for h in asked] == [h[0].tokens for h in saved]
    assert saved_as_argmax.attention.inference != mode  # the shared model is untouched


def test_hard_modes_attend_as_named(vocab):
    decoder = _hard(vocab, "argmax")
    features = torch.randn(4, 9, 16)
    tokens = torch.full((4,), vocab.start_id)
    outputs = {}
    with torch.inference_mode():
        for mode in HARD_MODES:
            memory = decoder.prepare(features, decoding=True, hard_mode=mode)
            outputs[mode] = decoder.step(tokens, decoder.init_state(memory), memory).attention
    alpha = outputs["expectation"].weights
    assert torch.allclose(outputs["expectation"].mix, alpha)  # sum_i alpha_i a_i
    assert torch.equal(outputs["argmax"].mix.argmax(1), alpha.argmax(1))
    for mode in ("argmax", "sample"):  # one region per word
        assert torch.equal(outputs[mode].mix.sum(1), torch.ones(4))
        assert set(outputs[mode].mix.unique().tolist()) == {0.0, 1.0}
    sampled = outputs["sample"]
    assert sampled.log_prob is not None
    chosen = alpha.gather(1, sampled.mix.argmax(1, keepdim=True)).squeeze(1)
    assert torch.allclose(sampled.log_prob, chosen.log())


def test_sampled_regions_change_the_caption_from_run_to_run(vocab):
    decoder = _hard(vocab, "argmax")
    features = torch.randn(20, 9, 16)
    with torch.inference_mode():
        runs = [[h[0].tokens for h in search(decoder, features, beam_size=1, hard_mode="sample")]
                for _ in range(3)]
        fixed = [[h[0].tokens for h in search(decoder, features, beam_size=1, hard_mode="argmax")]
                 for _ in range(2)]
    assert fixed[0] == fixed[1]
    assert runs[0] != runs[1] or runs[1] != runs[2]


def test_a_seed_gives_the_same_sampled_captions_and_hard_mode_needs_hard_attention(vocab):
    """DecodeOptions.seed: sampled hard attention drawn again with the same seed gives the same
    captions; a hard mode asked of a soft model is refused, not ignored."""
    from captioner.decoding import Decoding

    torch.manual_seed(0)
    hard = build_decoder(tiny_config(vocab, attention="hard")).eval()
    for p in hard.parameters():
        torch.nn.init.normal_(p, std=0.5)
    decoding = Decoding(hard, vocab)
    features = torch.randn(4, 9, 16)
    options = DecodeOptions(beam_size=2, max_length=8, grounding=False, fusion_weight=0.0,
                            hard_mode="sample")
    runs = [[h[0].tokens for h in decoding.run(features, options.replace(seed=s)).hypotheses]
            for s in (7, 7, 8, 9, 10)]
    assert runs[0] == runs[1]
    assert any(run != runs[0] for run in runs[2:])
    soft = Decoding(build_decoder(tiny_config(vocab)).eval(), vocab)
    with pytest.raises(ValueError, match="hard attention"):
        soft.run(features, options.replace(hard_mode="argmax"))
    with pytest.raises(ValueError, match="language model"):
        soft.run(features, options.replace(hard_mode=None, fusion_weight=0.5))
