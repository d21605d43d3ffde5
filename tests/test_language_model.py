"""The caption language model: training from text, its file, and shallow fusion."""
import json

import pytest
import torch

from captioner import build_decoder
from captioner.checkpoint import CheckpointError
from captioner.search import search
from captioner.language_model import (FusedDecoder, LanguageModel, LanguageModelConfig,
                                      LanguageModelFile, load_language_model,
                                      save_language_model)
from captioner.vocab import Vocabulary
from conftest import tiny_config
from fixture_data import make_dataset
from training.language_model import main as train_main


def _language_model(vocab: Vocabulary, favourite: str | None = None) -> LanguageModelFile:
    torch.manual_seed(1)
    model = LanguageModel(LanguageModelConfig(len(vocab), embed_dim=8, hidden_dim=12)).eval()
    if favourite is not None:  # a model that always wants this word next
        with torch.no_grad():
            model.out.bias[vocab.stoi[favourite]] += 30.0
    return LanguageModelFile(model, vocab, {"note": "test"})


def test_file_round_trip_and_refusals(tmp_path, vocab):
    saved = _language_model(vocab)
    path = tmp_path / "lm.pt"
    save_language_model(saved, path, half=True)
    loaded = load_language_model(path)
    assert loaded.vocab == vocab and loaded.metadata == {"note": "test"}
    tokens = torch.tensor([[1, 4, 5]])
    assert torch.allclose(loaded.model(tokens), saved.model(tokens), atol=0.05)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_language_model(junk)
    torch.save({"format": "captioner-language-model", "format_version": 1, "vocab": ["x"]},
               tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        load_language_model(tmp_path / "bad.pt")


def test_fusion_at_weight_zero_is_the_captioner_alone(vocab):
    decoder = build_decoder(tiny_config(vocab)).eval()
    features = torch.randn(4, 9, 16)
    fused = FusedDecoder(decoder, _language_model(vocab, "grass"), vocab, 0.0)
    with torch.inference_mode():
        alone = search(decoder, features, beam_size=3, max_length=8)
        zero = search(fused, features, beam_size=3, max_length=8)
    assert [h[0].tokens for h in alone] == [h[0].tokens for h in zero]


def test_fusion_pulls_captions_towards_what_the_language_model_expects(vocab):
    decoder = build_decoder(tiny_config(vocab)).eval()
    features = torch.randn(4, 9, 16)
    grass = vocab.stoi["grass"]
    # joined by word: the language model's vocabulary is ordered differently
    other = Vocabulary(list(vocab.itos[:4]) + list(reversed(vocab.itos[4:])))
    fused = FusedDecoder(decoder, _language_model(other, "grass"), vocab, 1.0)
    with torch.inference_mode():
        alone = search(decoder, features, beam_size=3, max_length=6, block_repeats=False)
        pulled = search(fused, features, beam_size=3, max_length=6, block_repeats=False)
    assert sum(h[0].tokens.count(grass) for h in pulled) > sum(
        h[0].tokens.count(grass) for h in alone)


def test_training_from_text_writes_a_model_that_learnt(tmp_path):
    data = make_dataset(tmp_path / "shapes")
    text = tmp_path / "coco.jsonl"
    lines = [json.dumps({"id": i, "caption": f"A {c} cat on a table."})
             for i, c in enumerate(["red", "blue", "green", "black"] * 20)]
    text.write_text("\n".join(lines) + "\n")
    out = tmp_path / "lm.pt"
    assert train_main(["--flickr", str(data), "--coco-text", str(text), "--out", str(out),
                       "--epochs", "3", "--min-count", "1", "--embed-dim", "8",
                       "--hidden-dim", "16", "--threads", "1"]) == 0
    saved = load_language_model(out)
    assert "cat" in saved.vocab.stoi and saved.metadata["held_out_perplexity"] < len(saved.vocab)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "fine"}\nnot json\n')
    assert train_main(["--flickr", str(data), "--coco-text", str(bad), "--out",
                       str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_a_fusion_at_another_weight_shares_the_models_and_decodes_as_a_new_one(vocab):
    decoder = build_decoder(tiny_config(vocab)).eval()
    features = torch.randn(4, 9, 16)
    language = _language_model(vocab, "grass")
    base = FusedDecoder(decoder, language, vocab, 0.0)
    heavier = base.with_weight(1.0)
    assert (base.weight, heavier.weight) == (0.0, 1.0)  # the base is unchanged
    assert heavier.word_map is base.word_map and heavier.language is base.language
    with torch.inference_mode():
        shared = search(heavier, features, beam_size=3, max_length=6, block_repeats=False)
        fresh = search(FusedDecoder(decoder, language, vocab, 1.0), features, beam_size=3,
                       max_length=6, block_repeats=False)
    assert [h[0].tokens for h in shared] == [h[0].tokens for h in fresh]
