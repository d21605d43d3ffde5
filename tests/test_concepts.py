"""Concepts: the reader's evidence, a decoder that reads it, and what trains them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from captioner import Checkpoint, Vocabulary, build_decoder, load_checkpoint, save_checkpoint
from captioner.concepts import ConceptReader, class_concept_matrix
from captioner.search import greedy, search
from captioner.encoder import preprocessing_for
from captioner.options import DecodeOptions
from captioner.grounding import Tagger
from conftest import WORDS, tiny_config
from training.batches import Batch
from training.concepts import choose_concepts, concept_forms, labels, noise_model, noisy_or_log_probs
from training.data import ImageRecord
from training.loop import AttentionSupervision
from training.text_concepts import TextDataError, load_caption_text, new_words, sample_concepts
from training.train import concept_of_words


def concept_config(vocab, attention="soft", **overrides):
    return tiny_config(vocab, attention, concepts=("person", "dog", "grass"),
                       imagenet_concepts=("cat", "bike"), **overrides)


def test_noisy_or_is_one_minus_the_product_over_cells():
    reader = ConceptReader(8, 3, 0)
    features = torch.randn(2, 5, 8)
    cells = torch.sigmoid(reader.detectors(features))
    expected = 1 - (1 - cells).prod(1)
    evidence = reader(features)
    assert torch.allclose(evidence.probs, expected, atol=1e-6)
    assert torch.allclose(evidence.maps.sum(1), torch.ones(2, 3), atol=1e-6)
    log_p, log_not = noisy_or_log_probs(reader.detectors(features))
    assert torch.allclose(log_p.exp(), expected, atol=1e-5)
    assert torch.allclose(log_not.exp(), 1 - expected, atol=1e-5)


def test_imagenet_concepts_agree_with_the_taggers_confidence(vocab):
    """The reader and the grounding tagger measure an ImageNet word the same way."""
    torch.manual_seed(1)
    weight, bias = torch.randn(1000, 16), torch.randn(1000)
    features = torch.randn(3, 6, 16)
    tagger = Tagger(Vocabulary(list(vocab.itos) + ["cat", "dog"]))
    words = tuple(tagger.words)
    reader = ConceptReader(16, 0, len(words))
    classes = {c: w for w in words for c in tagger.labels[words.index(w)]}
    reader.set_imagenet_head(weight, bias, class_concept_matrix(classes, words))
    evidence = tagger.evidence(features.mean(1) @ weight.T + bias, features @ weight.T + bias)
    assert torch.allclose(reader(features).probs, evidence.confidence, atol=1e-5)
    maps = reader(features).maps
    assert torch.allclose(maps.sum(1), torch.ones(3, len(words)), atol=1e-5)


@pytest.mark.parametrize("attention", ["soft", "hard", "luong-general"])
def test_zero_concept_layers_leave_the_decoder_as_it_was(vocab, attention):
    """--init of a model without concepts starts from exactly its captions."""
    plain = build_decoder(tiny_config(vocab, attention)).eval()
    reading = build_decoder(concept_config(vocab, attention)).eval()
    missing, unexpected = reading.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("concept") for k in missing)
    features = torch.randn(2, 9, 16)
    captions = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 8, 2, 0]])
    assert torch.allclose(plain(features, captions).logits, reading(features, captions).logits,
                          atol=1e-6)
    with torch.no_grad():  # once trained, the concepts move the words
        reading.concept_gates.weight.normal_()
    assert not torch.allclose(plain(features, captions).logits,
                              reading(features, captions).logits, atol=1e-4)


def test_a_concept_decoder_decodes_and_round_trips(tmp_path, vocab):
    decoder = build_decoder(concept_config(vocab)).eval()
    with torch.no_grad():
        for p in decoder.parameters():
            p.normal_(0, 0.3)
    features = torch.randn(3, 9, 16)
    first = greedy(decoder, features, max_length=6)
    beam1 = search(decoder, features, beam_size=1, max_length=6)
    assert [g.tokens for g in first] == [b[0].tokens for b in beam1]
    beam3 = search(decoder, features, beam_size=3, max_length=6)
    assert len(beam3) == 3
    # given concepts are used instead of the reader's
    memory = decoder.prepare(features, concepts=torch.zeros(3, 5))
    assert torch.equal(memory.concepts, torch.zeros(3, 5))
    path = tmp_path / "concepts.pt"
    config = decoder.config
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 224),
                               decoder.state_dict()), path)
    loaded = load_checkpoint(path)
    assert loaded.config == config and loaded.config.concepts == ("person", "dog", "grass")
    again = build_decoder(loaded.config).eval()
    again.load_state_dict(loaded.decoder)
    assert [g.tokens for g in greedy(again, features, max_length=6)] == \
        [g.tokens for g in first]


def test_concept_words_must_be_distinct(vocab):
    with pytest.raises(ValueError, match="distinct"):
        concept_config(vocab).__class__(vocab_size=len(vocab), concepts=("dog", "dog"))


def record(*captions: str) -> ImageRecord:
    return ImageRecord("x.jpg", "train", tuple(tuple(c.split()) for c in captions), captions)


def test_concepts_pool_plurals_and_person_words():
    records = [record("a man and two dogs", "a dog runs"), record("dogs on grass"),
               record("a girl on the grass"), record("a cat")]
    words = choose_concepts(records, min_photos=2)
    assert words[0] == "person" and "dog" in words and "grass" in words
    assert "dogs" not in words and "a" not in words and "cat" not in words
    truth = labels([r.captions for r in records], words)
    assert truth[:, words.index("person")].tolist() == [1, 0, 1, 0]
    assert truth[:, words.index("dog")].tolist() == [1, 1, 0, 0]
    assert "she" in concept_forms("person") and concept_forms("dog") == {"dog", "dogs"}


def test_pseudo_concepts_come_from_the_right_side():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.05], [0.2, 0.7], [0.1, 0.6]])
    truth = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    positive, negative = noise_model(probs, truth, min_count=1)
    drawn = sample_concepts(torch.tensor([[1.0, 0.0]] * 200), positive, negative,
                            np.random.default_rng(0))
    assert drawn[:, 0].min() >= 0.8 - 1e-6 and drawn[:, 0].max() <= 0.9 + 1e-6
    assert drawn[:, 1].min() >= 0.05 - 1e-6 and drawn[:, 1].max() <= 0.1 + 1e-6
    assert drawn[:, 0].std() > 0  # drawn, not a constant


def test_caption_text_groups_by_photo_and_names_a_bad_line(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [
        {"id": 1, "image_id": 7, "caption": "A toilet next to a sink."},
        {"id": 2, "image_id": 3, "caption": "A cat on a bed"},
        {"id": 3, "image_id": 7, "caption": "A white toilet"}]))
    groups = load_caption_text(path)
    assert groups == [[["a", "cat", "on", "a", "bed"]],
                      [["a", "toilet", "next", "to", "a", "sink"], ["a", "white", "toilet"]]]
    assert new_words(groups, {"a", "cat"}, 2) == ["toilet"]
    path.write_text('{"id": 1, "image_id": 7, "caption": "ok"}\nnot json\n')
    with pytest.raises(TextDataError, match=":2:"):
        load_caption_text(path)
    with pytest.raises(TextDataError, match="no such"):
        load_caption_text(tmp_path / "missing.jsonl")


def test_words_map_to_the_concept_that_supervises_them(vocab):
    grown = Vocabulary(list(vocab.itos) + [w for w in ("cat", "cats", "she", "bike")
                                           if w not in vocab.stoi])
    mapping = concept_of_words(grown, concept_config(grown))
    assert mapping[grown.stoi["man"]] == 0  # a person word: the pooled person concept
    assert mapping[grown.stoi["dogs"]] == 1
    assert mapping[grown.stoi["cats"]] == 3 and mapping[grown.stoi["bike"]] == 4
    assert mapping[grown.stoi["she"]] == -1  # a pronoun names nobody's place
    assert mapping[grown.stoi["the"]] == -1


def test_attention_supervision_is_zero_on_target_and_skips_text(vocab):
    decoder = build_decoder(concept_config(vocab))
    features = torch.randn(2, 9, 16)
    features[1] = 0  # a text item: no grid
    maps = decoder.concept_reader(features).maps
    mapping = concept_of_words(vocab, decoder.config)
    dog = vocab.stoi["dogs"]
    targets = torch.tensor([[dog, 2], [dog, 2]])
    mask = targets != 0
    batch = Batch(features, torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    supervision = AttentionSupervision(decoder, mapping, 1.0)
    on_target = torch.stack([maps[0, :, 1], maps[0, :, 1]]).unsqueeze(0).expand(2, 2, 9)
    kl, used = supervision.loss(batch, on_target, targets, mask)
    assert used == 1 and abs(float(kl)) < 1e-5
    uniform = torch.full((2, 2, 9), 1 / 9)
    kl, used = supervision.loss(batch, uniform, targets, mask)
    assert used == 1 and float(kl) > 0


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_concept_run_end_to_end(tmp_path, attention):
    """Detectors from captions, then a model warm-started from one without concepts reading
    them beside caption text, with attention supervision; it captions, and resumes."""
    from captioner import Captioner
    from fixture_data import make_dataset
    from training.concepts import main as concepts_main
    from training.train import main as train_main

    data = make_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    text = tmp_path / "text.jsonl"
    text.write_text("\n".join(json.dumps({"id": i, "image_id": i // 2, "caption": c})
                              for i, c in enumerate(["a red toilet in a bathroom",
                                                     "a toilet beside a sink"] * 3)))
    concept_file = tmp_path / "concepts.pt"
    assert concepts_main(["--data", str(data), "--cache-dir", str(cache), "--image-size", "64",
                          "--min-photos", "2", "--epochs", "5", "--out", str(concept_file),
                          "--extra-words", "toilet", "--threads", "1"]) == 0
    common = ["--data", str(data), "--cache-dir", str(cache), "--batch-size", "4",
              "--threads", "1", "--log-every", "1"]
    plain = tmp_path / "plain"
    assert train_main([*common, "--out", str(plain), "--image-size", "64", "--min-word-count",
                       "1", "--embed-dim", "16", "--hidden-dim", "24", "--attention-dim", "16",
                       "--max-steps", "2"]) == 0
    out = tmp_path / "reads"
    run = [*common, "--out", str(out), "--init", str(plain / "last.pt"), "--attention",
           attention, "--concept-file", str(concept_file), "--caption-text", str(text),
           "--text-min-count", "1", "--attention-supervision", "1", "--epochs", "2",
           "--text-grids", "0.5", "--concept-lr-scale", "5", "--concepts-only", "0.3"]
    assert train_main([*run, "--max-steps", "3"]) == 0
    assert train_main([*run, "--resume"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["type"] == "train"]
    assert any(r["attention_kl"] > 0 for r in steps)
    captioner = Captioner.from_checkpoint(out / "last.pt")
    assert "toilet" in captioner.vocab.stoi
    assert captioner.config.concepts[0] == "person"
    assert captioner.config.attention_temperature == 1.0
    image = next((tmp_path / "data" / "images").iterdir())
    caption = captioner.caption(image, grounding=False, fusion_weight=0.0)[0]
    assert caption.alphas.shape[0] == len(caption.words)
    # the detectors were not trained further
    first = torch.load(concept_file, weights_only=True)["detector"]["weight"]
    assert torch.allclose(captioner.decoder.concept_reader.detectors.weight, first, atol=1e-3)


def _no_one_seen(tmp_path, vocab):
    """A concept model whose person detector sees no one and whose likeliest word is "man"."""
    from captioner import Captioner, ModelConfig

    config = ModelConfig(vocab_size=len(vocab), encoder_dim=1280, embed_dim=16, hidden_dim=24,
                         attention_dim=16, image_size=128, concepts=("person", "dog"))
    decoder = build_decoder(config)
    with torch.no_grad():
        decoder.concept_reader.detectors.bias.fill_(-20.0)
        decoder.out.bias[vocab.stoi["man"]] = 30.0
    path = tmp_path / "m.pt"
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 128),
                               decoder.state_dict()), path)
    return Captioner.from_checkpoint(path)


def test_person_floor_bars_person_words_where_the_detector_sees_no_one(tmp_path, vocab):
    """DecodeOptions.person_floor: no person word where the person concept is below it."""
    from conftest import photo

    captioner = _no_one_seen(tmp_path, vocab)
    free = captioner.caption(photo(), beam_size=2, grounding=False, fusion_weight=0.0,
                             max_length=4, person_floor=0.0)[0]
    barred = captioner.caption(photo(), beam_size=2, grounding=False, fusion_weight=0.0,
                               max_length=4, person_floor=0.5)[0]
    assert "man" in free.words and "man" not in barred.words
    grounded = captioner.caption(photo(), beam_size=2, fusion_weight=0.0, max_length=4,
                                 person_floor=0.5)[0]
    assert "man" not in grounded.words


def test_evaluate_decodes_as_the_captioner_does_person_floor_included(tmp_path, vocab):
    """training.evaluate's captions come from the same Decoding as the app's: the person floor
    bars "man" there too (evaluate once lost it while the Captioner kept it)."""
    from conftest import photo
    from training.captions import caption_records

    captioner = _no_one_seen(tmp_path, vocab)
    encoded = captioner.encode([photo(), photo(seed=3)])
    records = [ImageRecord(f"p{i}.jpg", "test", (("a", "man"),), ("a man",)) for i in range(2)]
    for floor in (0.0, 0.5):
        options = DecodeOptions(beam_size=2, max_length=4, fusion_weight=0.0, person_floor=floor)
        by_evaluate = caption_records(captioner.decoding, records,
                                      lambda chunk: encoded.features, options)
        by_app = [c.text for c in captioner.caption_encoded(encoded, options)]
        assert list(by_evaluate.values()) == by_app
        assert ("man" in by_app[0].split()) == (floor == 0.0)


def test_the_reader_and_the_tagger_share_one_pass_of_the_imagenet_head(tmp_path, vocab):
    """Decoding reads the encoder's ImageNet head over the cells once for the concept reader's
    ImageNet words and the tagger: the concepts are exactly the reader's own."""
    from captioner import Captioner, ModelConfig
    from captioner.concepts import HEAD_KEYS
    from conftest import photo

    config = ModelConfig(vocab_size=len(vocab), encoder_dim=1280, embed_dim=16, hidden_dim=24,
                         attention_dim=16, image_size=128, concepts=("person",),
                         imagenet_concepts=("cat", "dog"))
    weights = {k: v for k, v in build_decoder(config).state_dict().items() if k not in HEAD_KEYS}
    weights["concept_reader.class_concepts"] = class_concept_matrix(
        {281: "cat", 285: "cat", 207: "dog", 208: "dog"}, config.imagenet_concepts)
    path = tmp_path / "m.pt"
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 128), weights),
                    path)
    captioner = Captioner.from_checkpoint(path)
    decoding = captioner.decoding
    assert decoding.shares_head
    features = captioner.encode([photo(), photo(seed=4)]).features
    reader = captioner.decoder.concept_reader
    with torch.inference_mode():
        classifier = decoding.classifier(features, DecodeOptions())
        shared = reader(features, *classifier).probs
        own = reader(features).probs
        ran = decoding.run(features, DecodeOptions(beam_size=2, max_length=4, fusion_weight=0.0))
    assert torch.equal(shared, own) and torch.equal(ran.concepts, own)
    assert shared[:, 1:].sum() > 0  # the ImageNet words read something
