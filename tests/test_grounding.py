"""Grounded captions: the tagger (ImageNet probabilities -> caption words), constrained beam
search (every tag used once, vetoed words never), and their place in the Captioner."""
import pytest
import torch

from captioner import build_decoder
from captioner.options import DecodeOptions
from captioner.search import search
from captioner.grounding import Grounding, Tagger
from captioner.imagenet import imagenet_names
from captioner.object_words import object_words
from captioner.vocab import Vocabulary
from conftest import tiny_config

OPTIONS = DecodeOptions(beam_size=3, max_length=8)


def _decoder(vocab):
    torch.manual_seed(0)
    decoder = build_decoder(tiny_config(vocab)).eval()
    for p in decoder.parameters():  # large weights: confident, varied captions
        torch.nn.init.normal_(p, std=0.5)
    return decoder


def _grounding(vocab, batch, tags=(), vetoed=()):
    """tags: (photo, tag index, words); vetoed: (photo, word)."""
    word_bits = torch.zeros(batch, len(vocab), dtype=torch.long)
    counts = torch.zeros(batch, dtype=torch.long)
    veto = torch.zeros(batch, len(vocab), dtype=torch.bool)
    for photo, c, words in tags:
        for w in words:
            word_bits[photo, vocab.stoi[w]] |= 1 << c
        counts[photo] = max(int(counts[photo]), c + 1)
    for photo, w in vetoed:
        veto[photo, vocab.stoi[w]] = True
    return Grounding(word_bits, counts, veto)


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_without_tags_the_constrained_search_is_the_plain_one(vocab, beam_size):
    decoder = _decoder(vocab)
    features = torch.randn(6, 9, 16)
    options = OPTIONS.replace(beam_size=beam_size, n_best=beam_size)
    with torch.inference_mode():
        plain = search(decoder, features, options)
        empty = search(decoder, features, options, grounding=_grounding(vocab, 6))
        # nothing vetoed but one word of one photo: every other photo's caption is unchanged
        one_veto = _grounding(vocab, 6, vetoed=[(0, vocab.itos[plain[0][0].tokens[0]])])
        vetoed = search(decoder, features, options, grounding=one_veto)
    for a, b in zip(plain, empty):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
    assert vetoed[0][0].tokens[0] != plain[0][0].tokens[0]
    for a, b in zip(plain[1:], vetoed[1:]):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def test_every_tag_is_used_exactly_once_and_vetoed_words_never(vocab):
    decoder = _decoder(vocab)
    features = torch.randn(5, 9, 16)
    tags = [(0, 0, ["dogs"]), (1, 0, ["beach"]), (1, 1, ["sky", "grass"]), (2, 0, ["man"])]
    vetoed = [(3, w) for w in ("a", "the", "on")] + [(2, "bike")]
    grounding = _grounding(vocab, 5, tags, vetoed)
    with torch.inference_mode():
        results = search(decoder, features, OPTIONS.replace(max_length=12), grounding=grounding)
        free = search(decoder, features, OPTIONS.replace(max_length=12))
    words = [vocab.decode(hyps[0].tokens) for hyps in results]
    assert words[0].count("dogs") == 1
    assert words[1].count("beach") == 1 and words[1].count("sky") + words[1].count("grass") == 1
    assert words[2].count("man") == 1 and "bike" not in words[2]
    assert not {"a", "the", "on"} & set(words[3])
    assert results[4][0].tokens == free[4][0].tokens  # a photo with nothing asked of it
    for hyps in results:  # the reported log-probability is still the model's own
        assert hyps[0].log_prob < float(hyps[0].word_log_probs.sum()) + 1e-4  # and its <end>


def test_a_batch_equals_its_photos_one_at_a_time(vocab):
    decoder = _decoder(vocab)
    features = torch.randn(3, 9, 16)
    grounding = _grounding(vocab, 3, [(0, 0, ["circle"]), (2, 0, ["red"]), (2, 1, ["bike"])])
    with torch.inference_mode():
        batched = search(decoder, features, OPTIONS, grounding=grounding)
        alone = [search(decoder, features[i:i + 1], OPTIONS,
                        grounding=Grounding(*(x[i:i + 1] for x in grounding)))[0]
                 for i in range(3)]
    assert [h[0].tokens for h in batched] == [h[0].tokens for h in alone]


def test_an_unreachable_tag_falls_back_to_the_most_complete_state(vocab):
    """Two tags but room for one word: the caption uses one of them."""
    decoder = _decoder(vocab)
    grounding = _grounding(vocab, 1, [(0, 0, ["dogs"]), (0, 1, ["grass"])])
    with torch.inference_mode():
        [[best]] = search(decoder, torch.randn(1, 9, 16), OPTIONS.replace(max_length=1),
                          grounding=grounding)
    assert vocab.decode(best.tokens) in (["dogs"], ["grass"])


def _vocab_with(*words):
    return Vocabulary.build([list(words) + ["a", "on"]], min_count=1)


def _logits(classes: dict[int, float], cells: int = 4):
    """Logits whose softmax puts about `classes` probabilities on those ImageNet classes."""
    probabilities = torch.full((1000,), 1e-9)
    for index, p in classes.items():
        probabilities[index] = p
    # the rest on a class that names no caption word
    probabilities[min(set(range(1000)) - set(object_words().classes))] += 1 - sum(classes.values())
    logits = probabilities.log().unsqueeze(0)
    return logits, logits.unsqueeze(1).expand(1, cells, 1000)


def _class_of(word):
    return sorted(i for i, c in object_words().classes.items() if c.word == word)


def test_the_tagger_sums_the_classes_of_a_word_and_names_them():
    tagger = Tagger(_vocab_with("cat", "cats", "dog", "dogs"))
    cats = _class_of("cat")
    evidence = tagger.evidence(*_logits({cats[0]: 0.5, cats[1]: 0.4}))
    [[tag]] = tagger.tags(evidence, threshold=0.5, max_tags=2, names=imagenet_names())
    assert tag.word == "cat" and tag.category == "cat"
    assert tag.confidence == pytest.approx(0.9, abs=0.01)
    assert tag.labels[0] == imagenet_names()[cats[0]]
    assert tagger.tags(evidence, 0.95, 2, imagenet_names()) == [[]]


def test_a_sure_tag_vetoes_its_rivals_and_satisfies_its_plural():
    vocab = _vocab_with("cat", "cats", "dog", "dogs", "bed")
    tagger = Tagger(vocab)
    tags = tagger.tags(tagger.evidence(*_logits({_class_of("cat")[0]: 0.95})), 0.5, 2,
                       imagenet_names())
    sure = tagger.grounding(tags, veto_threshold=0.8)
    assert sure.word_bits[0, vocab.stoi["cat"]] == 1 and sure.word_bits[0, vocab.stoi["cats"]] == 1
    assert sure.vetoed[0, vocab.stoi["dog"]] and sure.vetoed[0, vocab.stoi["dogs"]]
    assert not sure.vetoed[0, vocab.stoi["bed"]]  # another supercategory: a cat may lie on it
    unsure = tagger.grounding(tags, veto_threshold=1.0)
    assert not unsure.vetoed.any()
    assert tagger.placed(["a", "cat", "on", "a", "cat"], tags[0]) == [None, "cat", None, None, None]


def test_people_are_never_tags():
    tagger = Tagger(_vocab_with("person", "man"))
    people = [i for i, c in object_words().classes.items() if c.category == "person"]
    evidence = tagger.evidence(*_logits({people[0]: 0.99}))
    assert tagger.tags(evidence, 0.1, 2, imagenet_names()) == [[]]


def test_an_object_the_classifier_sees_nowhere_is_not_a_candidate():
    vocab = _vocab_with("cat", "dog", "dogs", "bed")
    tagger = Tagger(vocab)
    evidence = tagger.evidence(*_logits({_class_of("cat")[0]: 0.3, _class_of("dog")[0]: 0.02}))
    tags = tagger.tags(evidence, 0.9, 2, imagenet_names())  # nothing sure enough to place
    floor = tagger.grounding(tags, 0.8, evidence, evidence_floor=0.01).vetoed[0]
    assert floor[vocab.stoi["bed"]] and not floor[vocab.stoi["dog"]] and not floor[vocab.stoi["cat"]]
    higher = tagger.grounding(tags, 0.8, evidence, evidence_floor=0.05).vetoed[0]
    assert higher[vocab.stoi["dog"]] and higher[vocab.stoi["dogs"]] and not higher[vocab.stoi["cat"]]
    assert not tagger.grounding(tags, 0.8, evidence, evidence_floor=0.0).vetoed.any()
