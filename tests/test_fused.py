"""Decoding through fused step layers (captioner.fused): the same numbers as the layers one by
one, weights derived afresh after any change, and int8 decoding as a model file's option."""
import pytest
import torch

from captioner import Captioner, Checkpoint, build_decoder, load_checkpoint, save_checkpoint
from captioner.build import load_decoder
from captioner.fused import Int8Linear
from captioner.options import DEFAULT_OPTIONS
from captioner.search import search
from captioner.encoder import preprocessing_for
from captioner.language_model import (FusedDecoder, LanguageModel, LanguageModelConfig,
                                      LanguageModelFile)

from conftest import EXAMPLES, photo, tiny_config, write_checkpoint
from test_concepts import concept_config

CAPTION = ["a", "red", "square", "on", "grass"]


def _model(vocab, attention, concepts, **overrides):
    config = (concept_config(vocab, attention, **overrides) if concepts
              else tiny_config(vocab, attention, **overrides))
    torch.manual_seed(1)
    decoder = build_decoder(config).eval()
    for p in decoder.parameters():  # weights large enough that a wrong term would show
        torch.nn.init.normal_(p, std=0.3)
    return decoder


def _steps(decoder, features, captions, fused: bool):
    """Each step's logits (T, B, V), attention maps and final state, fed the caption; fused:
    through the StepLayers, else through the layers one by one (a FusedDecoder's language
    model follows its decoder)."""
    switch = decoder.decoder if isinstance(decoder, FusedDecoder) else decoder
    switch.fuse_steps = fused
    try:
        with torch.inference_mode():
            memory = decoder.prepare(features, decoding=True)
            assert (memory.layers is not None) == fused
            state = decoder.init_state(memory)
            logits, maps = [], []
            for t in range(captions.shape[1] - 1):
                out = decoder.step(captions[:, t], state, memory)
                logits.append(out.logits)
                maps.append(out.attention.weights)
                state = out.state
    finally:
        switch.fuse_steps = True
    return torch.stack(logits), torch.stack(maps), state


@pytest.mark.parametrize("concepts", [False, True], ids=["grid", "concepts"])
def test_fused_steps_give_the_layers_own_logits(vocab, attention_kind, concepts):
    decoder = _model(vocab, attention_kind, concepts)
    features = torch.randn(3, 9, 16)
    captions = torch.tensor([vocab.encode(CAPTION)] * 3)
    fused = _steps(decoder, features, captions, fused=True)
    layer_by_layer = _steps(decoder, features, captions, fused=False)
    assert torch.allclose(fused[0], layer_by_layer[0], rtol=1e-5, atol=1e-5)
    assert torch.allclose(fused[1], layer_by_layer[1], rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(fused[2], layer_by_layer[2]):
        assert (ours is None) == (theirs is None)
        assert ours is None or torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gate", ["channel", "none"])
def test_fused_steps_with_every_gate(vocab, gate):
    decoder = _model(vocab, "soft", False, gate=gate)
    features = torch.randn(2, 9, 16)
    captions = torch.tensor([vocab.encode(CAPTION)] * 2)
    assert torch.allclose(_steps(decoder, features, captions, True)[0],
                          _steps(decoder, features, captions, False)[0], rtol=1e-5, atol=1e-5)


def test_fused_steps_are_used_only_to_decode_without_gradients(vocab):
    decoder = _model(vocab, "soft", False)
    features = torch.randn(2, 9, 16)
    assert decoder.prepare(features, decoding=True).layers is None  # gradients: the layers
    with torch.no_grad():
        assert decoder.prepare(features, decoding=True).layers is not None
        assert decoder.prepare(features).layers is None  # teacher forcing
        assert decoder.train().prepare(features, decoding=True).layers is None


def _language_fusion(vocab, decoder, weight=0.5):
    torch.manual_seed(2)
    language = LanguageModel(LanguageModelConfig(len(vocab), embed_dim=10, hidden_dim=14)).eval()
    for p in language.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return FusedDecoder(decoder, LanguageModelFile(language, vocab), vocab, weight)


def test_the_language_model_steps_through_its_fused_layers_with_the_same_scores(vocab):
    decoder = _model(vocab, "soft", False)
    fusion = _language_fusion(vocab, decoder)
    features = torch.randn(3, 9, 16)
    captions = torch.tensor([vocab.encode(CAPTION)] * 3)
    fused = _steps(fusion, features, captions, fused=True)
    layer_by_layer = _steps(fusion, features, captions, fused=False)
    assert torch.allclose(fused[0], layer_by_layer[0], rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(fused[2].language, layer_by_layer[2].language):
        assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-6)


def _decode_logits(decoder, features, captions):
    return _steps(decoder, features, captions, fused=True)[0]


def test_derived_layers_follow_every_change_of_the_weights(vocab):
    """Train one step, decode again: what a fresh model with those weights decodes."""
    decoder = _model(vocab, "soft", True)
    features = torch.randn(3, 9, 16)
    captions = torch.tensor([vocab.encode(CAPTION)] * 3)
    before = _decode_logits(decoder, features, captions)
    keys = set(decoder.state_dict())
    assert keys == set(build_decoder(decoder.config).state_dict())  # nothing derived is saved

    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    decoder.train()
    logits = decoder(features, captions).logits
    torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                      captions[:, 1:].reshape(-1)).backward()
    optimizer.step()
    decoder.eval()
    after = _decode_logits(decoder, features, captions)
    fresh = build_decoder(decoder.config).eval()
    fresh.load_state_dict(decoder.state_dict())
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.equal(after, _decode_logits(fresh, features, captions))

    other = _model(vocab, "soft", True)  # load_state_dict: new weights, same tensors
    torch.manual_seed(5)
    for p in other.parameters():
        torch.nn.init.normal_(p, std=0.3)
    decoder.load_state_dict(other.state_dict())
    assert torch.equal(_decode_logits(decoder, features, captions),
                       _decode_logits(other, features, captions))
    assert set(decoder.state_dict()) == keys


def test_the_language_models_layers_follow_its_weights(vocab):
    fusion = _language_fusion(vocab, _model(vocab, "soft", False))
    language = fusion.language
    first = language.step_layers()
    assert language.step_layers() is first  # built once while the weights stay
    with torch.no_grad():
        language.out.weight.mul_(2)
    assert language.step_layers() is not first
    assert torch.equal(language.step_layers().out.weight, language.out.weight)


def test_a_quantized_model_decodes_in_int8_and_trains_in_float(vocab):
    torch.manual_seed(3)
    plain = build_decoder(tiny_config(vocab, "soft")).eval()
    quantized = build_decoder(tiny_config(vocab, "soft", quantized=True)).eval()
    quantized.load_state_dict(plain.state_dict())
    layers = quantized.step_layers()
    assert all(isinstance(layer, Int8Linear)
               for layer in (layers.before, layers.after, layers.out))
    assert not isinstance(plain.step_layers().out, Int8Linear)
    features = torch.randn(2, 9, 16)
    captions = torch.tensor([vocab.encode(CAPTION)] * 2)
    int8 = _decode_logits(quantized, features, captions)
    assert not torch.equal(int8, _decode_logits(plain, features, captions))
    assert torch.allclose(int8, _decode_logits(plain, features, captions), atol=0.05)
    with torch.inference_mode():  # teacher forcing reads the float layers
        assert torch.equal(quantized(features, captions).logits, plain(features, captions).logits)
        hypotheses = search(quantized, features, beam_size=3, max_length=8)
    assert all(len(h) == 1 and len(h[0].tokens) <= 8 for h in hypotheses)


def test_a_quantized_model_round_trips_through_a_checkpoint(tmp_path, vocab):
    decoder = _model(vocab, "luong-concat", False, quantized=True)
    path = tmp_path / "int8.pt"
    save_checkpoint(Checkpoint(decoder.config, vocab, preprocessing_for("efficientnet_lite0", 128),
                               decoder.state_dict()), path)
    loaded = load_checkpoint(path)
    assert loaded.config.quantized and loaded.config == decoder.config
    again = load_decoder(loaded).eval()
    assert isinstance(again.step_layers().out, Int8Linear)
    features = torch.randn(3, 9, 16)
    with torch.inference_mode():
        ours = search(decoder, features, beam_size=3, max_length=10)
        theirs = search(again, features, beam_size=3, max_length=10)
    assert [h[0].tokens for h in ours] == [h[0].tokens for h in theirs]
    assert [h[0].log_prob for h in ours] == pytest.approx([h[0].log_prob for h in theirs])


@pytest.mark.slow
def test_a_quantized_captioner_fuses_an_int8_language_model(tmp_path, vocab):
    path = write_checkpoint(tmp_path / "int8.pt", vocab, "soft", quantized=True)
    captioner = Captioner.from_checkpoint(path)
    caption = captioner.caption(photo(seed=2), fusion_weight=0.5)[0]
    assert caption.alphas.shape[0] == len(caption.words)
    language = captioner.decoding.decoder_for(DEFAULT_OPTIONS.replace(fusion_weight=0.5)).language
    assert isinstance(language.step_layers(quantized=True).out, Int8Linear)


@pytest.mark.slow
def test_the_shipped_model_writes_the_same_captions_fused_or_layer_by_layer():
    """Fusing the steps changes no caption (float products; the shipped file's int8 products
    are a separate, measured choice: docs/performance.md)."""
    import dataclasses
    from captioner.inference import default_checkpoint
    checkpoint = load_checkpoint(default_checkpoint())
    checkpoint.config = dataclasses.replace(checkpoint.config, quantized=False)
    captioner = Captioner.from_parts(checkpoint)
    photos = sorted(EXAMPLES.glob("*.jpg"))
    assert len(photos) == 4
    encoded = captioner.encode(photos)
    fused = captioner.caption_encoded(encoded)
    captioner.decoder.fuse_steps = False
    layer_by_layer = captioner.caption_encoded(encoded)
    assert [c.words for c in fused] == [c.words for c in layer_by_layer]
    assert [c.score for c in fused] == pytest.approx([c.score for c in layer_by_layer], abs=1e-4)
    for ours, theirs in zip(fused, layer_by_layer):
        assert ours.alphas == pytest.approx(theirs.alphas, abs=1e-5)


def test_a_model_built_in_inference_mode_decodes_fused(vocab):
    """Parameters made in inference mode keep no version counter; they still decode."""
    with torch.inference_mode():
        decoder = build_decoder(tiny_config(vocab, "hard")).eval()
        hypotheses = search(decoder, torch.randn(2, 9, 16), beam_size=2, max_length=6)
    assert len(hypotheses) == 2 and decoder.step_layers() is decoder.step_layers()


def test_building_the_step_layers_leaves_a_seeded_callers_draws_alone(vocab):
    """The first decode builds the fused layers; that must not consume torch's generator, or
    hard attention's seeded samples would differ between the first call and later ones."""
    from captioner.search import search
    decoder = build_decoder(tiny_config(vocab, "hard")).eval()
    features = torch.randn(1, 9, 16)

    def draw() -> list:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(3)
            return search(decoder, features, beam_size=2, max_length=6,
                               hard_mode="sample")[0][0].tokens
    assert draw() == draw()


def test_an_int8_rows_result_does_not_depend_on_the_other_rows_of_the_call():
    """One scale for the whole call's input would make a row's product depend on its
    neighbours (another photo captioned in the same call, another hypothesis of the beam)."""
    torch.manual_seed(5)
    layer = Int8Linear(torch.nn.Linear(32, 24))
    rows = torch.rand(6, 32) * 2 - 1
    alone = layer(rows[:1] * 0.1)  # a row of small values, whose own range would be narrow
    with_others = layer(torch.cat([rows[:1] * 0.1, rows[1:]]))
    assert torch.equal(alone, with_others[:1])
    assert layer(rows.view(2, 3, 32)).shape == (2, 3, 24)
    assert torch.allclose(layer(rows), torch.nn.functional.linear(
        rows, layer.product.weight().dequantize(), layer.product.bias()), atol=0.05)


@pytest.mark.slow
def test_an_int8_captioner_gives_a_photo_the_same_caption_alone_or_with_others(tmp_path, vocab):
    path = write_checkpoint(tmp_path / "int8.pt", vocab, "soft", quantized=True)
    captioner = Captioner.from_checkpoint(path)
    photos = [photo(seed=s) for s in range(4)]
    together = captioner.caption(photos, fusion_weight=0.5)
    for one, caption in zip(photos, together):
        alone = captioner.caption(one, fusion_weight=0.5)[0]
        assert alone.words == caption.words
        assert alone.word_probs == pytest.approx(caption.word_probs, abs=1e-5)
