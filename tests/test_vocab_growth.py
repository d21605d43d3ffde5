"""New words for a trained model (training.vocab_growth), alone and in an --init run."""
import pytest
import torch

from captioner import (Checkpoint, build_decoder, load_checkpoint, save_checkpoint,
                       Vocabulary)
from captioner.encoder import preprocessing_for
from captioner.search import greedy
from training.train import main as train_main
from training.vocab_growth import grow_vocabulary, vocabulary_dims, words_to_add

from conftest import tiny_config
from fixture_data import make_dataset


def trained_checkpoint(vocab, attention="soft") -> Checkpoint:
    """Random weights standing in for a trained model (biases spread like a trained one's)."""
    config = tiny_config(vocab, attention)
    decoder = build_decoder(config)
    with torch.no_grad():
        decoder.out.bias.normal_()
    return Checkpoint(config, vocab, preprocessing_for(config.encoder, 224),
                      {k: v.clone() for k, v in decoder.state_dict().items()},
                      training={"optimizer": {}})


def logits_of(checkpoint, features, tokens):
    decoder = build_decoder(checkpoint.config)
    decoder.load_state_dict(checkpoint.decoder)
    decoder.eval()
    memory = decoder.prepare(features, decoding=True)
    state = decoder.init_state(memory)
    rows = []
    for token in tokens:
        step = decoder.step(torch.full((len(features),), token), state, memory)
        rows.append(step.logits)
        state = step.state
    return decoder, torch.stack(rows, 1)  # (B, T, V)


def test_old_words_keep_their_rows_logits_and_captions(vocab, attention_kind):
    before = trained_checkpoint(vocab, attention_kind)
    after = grow_vocabulary(before, ["zebra", "giraffe", "zebra", "red"])  # repeat, known word
    assert after.vocab.itos == vocab.itos + ["zebra", "giraffe"]
    assert after.config.vocab_size == len(vocab) + 2 == len(after.vocab)
    old = len(vocab)
    for name in vocabulary_dims(before.config):
        assert torch.equal(after.decoder[name][:old], before.decoder[name]), name
        assert after.decoder[name].shape[0] == old + 2
    for name, tensor in before.decoder.items():  # every other tensor untouched
        assert name in vocabulary_dims(before.config) or torch.equal(after.decoder[name], tensor)
    features = torch.randn(3, 9, 16)  # a 3x3 grid
    tokens = [Vocabulary.start_id, vocab.stoi["a"], vocab.stoi["dog" if "dog" in vocab.stoi
                                                               else "red"]]
    old_decoder, old_logits = logits_of(before, features, tokens)
    new_decoder, new_logits = logits_of(after, features, tokens)
    torch.testing.assert_close(new_logits[..., :old], old_logits, rtol=0, atol=0)
    # A new word starts below most known words: the captions are the old ones.
    assert (new_logits[..., old:] < new_logits[..., 4:old].median(-1, keepdim=True).values).all()
    assert [h.tokens for h in greedy(new_decoder, features)] == \
        [h.tokens for h in greedy(old_decoder, features)]
    # Pure: the input checkpoint is unchanged, and the grown one has no optimizer state.
    assert before.config.vocab_size == old and before.decoder["out.bias"].shape[0] == old
    assert after.training is None and before.training is not None


def test_defaults_and_like_rows(vocab):
    before = trained_checkpoint(vocab)
    after = grow_vocabulary(before, ["zebra", "kitten"], like={"zebra": "dogs", "horse": "a"})
    zebra, kitten, dogs = (after.vocab.stoi[w] for w in ("zebra", "kitten", "dogs"))
    for name in ("embedding.weight", "out.weight", "out.bias"):
        assert torch.equal(after.decoder[name][zebra], before.decoder[name][dogs])
    words = slice(4, len(vocab))  # the special tokens' rows do not count
    torch.testing.assert_close(after.decoder["embedding.weight"][kitten],
                               before.decoder["embedding.weight"][words].mean(0))
    torch.testing.assert_close(after.decoder["out.weight"][kitten],
                               before.decoder["out.weight"][words].mean(0))
    bias = before.decoder["out.bias"][words]
    assert after.decoder["out.bias"][kitten] == torch.quantile(bias, 0.1)
    assert after.metadata["vocabulary_growth"] == [
        {"from": len(vocab), "added": 2, "like": {"zebra": "dogs"}}]
    with pytest.raises(ValueError, match="zebra->okapi"):
        grow_vocabulary(before, ["zebra"], like={"zebra": "okapi"})
    with pytest.raises(ValueError, match="zebra-><unk>"):
        grow_vocabulary(before, ["zebra"], like={"zebra": "<unk>"})
    assert grow_vocabulary(before, ["red", "a"]) is before  # nothing new


def test_grown_checkpoint_round_trips(vocab, tmp_path):
    grown = grow_vocabulary(trained_checkpoint(vocab), ["zebra"], like={"zebra": "dogs"})
    save_checkpoint(grown, tmp_path / "grown.pt")
    loaded = load_checkpoint(tmp_path / "grown.pt")
    assert loaded.vocab == grown.vocab and loaded.config == grown.config
    assert all(torch.equal(loaded.decoder[k], v) for k, v in grown.decoder.items())
    assert loaded.metadata["vocabulary_growth"][0]["added"] == 1


def test_words_to_add_follow_the_min_count(vocab):
    captions = [["a", "zebra", "grazes"], ["a", "zebra"], ["okapi"]]
    assert words_to_add(vocab, captions, 2) == ["zebra"]
    assert words_to_add(vocab, captions, 1) == ["zebra", "grazes", "okapi"]


def test_init_run_learns_new_words_instead_of_unk(tmp_path, capsys):
    data = make_dataset(tmp_path / "shapes")
    # A model that has never seen "yellow" or "square" (the training photos' captions also
    # say green and blue).
    known = Vocabulary.build([["a", "red", "circle", "on", "white", "background"]], 1)
    config = tiny_config(known, encoder_dim=1280, image_size=64)
    start = Checkpoint(config, known, preprocessing_for(config.encoder, 64),
                       build_decoder(config).state_dict())
    save_checkpoint(start, tmp_path / "start.pt")
    argv = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--init",
            str(tmp_path / "start.pt"), "--min-word-count", "1", "--batch-size", "4",
            "--threads", "1", "--max-steps", "4"]
    assert train_main([*argv, "--out", str(tmp_path / "grown")]) == 0
    assert ("4 new word(s) of the training captions (--min-word-count 1) join its vocabulary "
            "of 10") in capsys.readouterr().err
    grown = load_checkpoint(tmp_path / "grown" / "last.pt")
    assert grown.vocab.itos[:len(known)] == known.itos  # old ids unchanged
    assert {"yellow", "green", "blue", "square"} <= set(grown.vocab.itos)
    assert grown.config.vocab_size == len(grown.vocab) == len(known) + 4
    yellow = grown.vocab.stoi["yellow"]
    assert grown.vocab.encode(["a", "yellow", "square"])[2] == yellow != Vocabulary.unk_id
    # Trained: the new word's output row moved away from its starting value (all new rows
    # started equal, the mean row).
    out = grown.decoder["out.weight"][len(known):]
    assert not torch.allclose(out[0], out[1])
    # --no-grow-vocabulary keeps the checkpoint's vocabulary (new words become <unk>).
    assert train_main([*argv, "--out", str(tmp_path / "fixed"), "--no-grow-vocabulary"]) == 0
    assert load_checkpoint(tmp_path / "fixed" / "last.pt").vocab == known
