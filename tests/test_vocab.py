import pytest

from captioner.vocab import SPECIALS, Vocabulary, detokenize, tokenize


def test_tokenize_matches_karpathy_style_tokens():
    assert tokenize("A dog's ball, in a T-shirt!") == ["a", "dogs", "ball", "in", "a", "tshirt"]
    assert tokenize("  Two  people .  ") == ["two", "people"]
    assert tokenize("...") == []


@pytest.mark.parametrize("text", ["a man rides a bike", "two dogs play in the snow"])
def test_tokenize_detokenize_round_trip(text):
    assert detokenize(tokenize(text)) == text
    assert tokenize(detokenize(tokenize(text.upper() + " ."))) == text.split()


def test_build_keeps_words_at_min_count_most_frequent_first():
    vocab = Vocabulary.build([["a", "dog"], ["a", "cat"], ["a", "dog", "runs"]], min_count=2)
    assert vocab.itos == list(SPECIALS) + ["a", "dog"]
    assert len(vocab) == 6


def test_encode_decode_round_trip_and_unknown_words():
    vocab = Vocabulary.build([["a", "dog", "runs"]], min_count=1)
    ids = vocab.encode(["a", "dog", "flies"])
    assert ids[0] == vocab.start_id and ids[-1] == vocab.end_id
    assert ids[3] == vocab.unk_id
    assert vocab.decode(ids) == ["a", "dog", "<unk>"]
    assert vocab.decode(vocab.encode(["a", "dog", "runs"])) == ["a", "dog", "runs"]
    # decoding stops at the first <end> and skips padding
    assert vocab.decode([vocab.stoi["a"], vocab.pad_id, vocab.end_id, vocab.stoi["dog"]]) == ["a"]


def test_vocabulary_rejects_bad_word_lists():
    with pytest.raises(ValueError, match="special tokens"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(list(SPECIALS) + ["a", "a"])
