"""Caption confidence: its features, verdicts, and the model file that carries it."""
from __future__ import annotations

import pytest
import torch

from captioner import Captioner, Checkpoint, build_decoder, load_checkpoint, save_checkpoint
from captioner.confidence import FEATURES, VERDICTS, ConfidenceModel, Evidence, features
from captioner.encoder import preprocessing_for
from conftest import photo
from scripts.calibrate_confidence import choose, flagged_stats, kmeans_centres

import numpy as np


def evidence(words, probs=None, **concepts):
    words = words.split()
    return Evidence(words, probs or [0.6] * len(words), concepts, 0.1)


def test_a_person_the_detector_does_not_see_is_a_reason():
    values, reasons = features(evidence("a man in a kitchen", person=0.05, kitchen=0.9))
    assert values[FEATURES.index("person_unseen")] == pytest.approx(0.95)
    assert any("person detector gives 5%" in r for r in reasons)
    values, reasons = features(evidence("a man in a kitchen", person=0.95, kitchen=0.9))
    assert values[FEATURES.index("person_unseen")] == pytest.approx(0.05)
    assert not any("person" in r for r in reasons)


def test_named_objects_without_evidence_and_sure_objects_left_out():
    values, reasons = features(evidence("a dog on a sofa", dog=0.02, cat=0.9, person=0.0))
    assert values[FEATURES.index("weakest_named")] == pytest.approx(0.98)
    assert values[FEATURES.index("surest_unnamed")] == pytest.approx(0.9)
    assert any('"dog"' in r for r in reasons) and any('"cat"' in r for r in reasons)
    values, _ = features(evidence("two cats on a sofa", cat=0.9))  # plural names the concept
    assert values[FEATURES.index("surest_unnamed")] == 0.0
    assert values[FEATURES.index("weakest_named")] == pytest.approx(0.1)


def model(weights, unsure=0.5, guess=0.8, centres=None):
    n = len(FEATURES)
    return ConfidenceModel((0.0,) * n, (1.0,) * n, tuple(weights), 0.0, unsure, guess, centres)


def test_verdicts_follow_the_thresholds():
    only_person = [0.0] * len(FEATURES)
    only_person[FEATURES.index("person_unseen")] = 10.0
    judge = model(only_person, unsure=0.6, guess=0.9).judge
    assert judge(evidence("a man", person=0.0)).verdict == "a guess"
    assert judge(evidence("a man", person=0.9)).verdict == "unsure"  # p = sigmoid(1) = 0.73
    right = judge(evidence("a man", person=1.0))
    assert right.verdict == "probably right" and right.reasons == ()
    with pytest.raises(ValueError):
        model(only_person, unsure=0.9, guess=0.5)


def test_novelty_is_the_distance_to_the_nearest_centre():
    centres = torch.nn.functional.normalize(torch.eye(3, 4), dim=1)
    grid = torch.zeros(2, 5, 4)
    grid[0, :, 0] = 1.0  # on a centre
    grid[1, :, 3] = 1.0  # orthogonal to all
    assert model([0.0] * len(FEATURES), centres=centres).novelty(grid).tolist() == \
        pytest.approx([0.0, 1.0])


def test_thresholds_meet_the_precision_and_flickr_bounds():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.75, 0.1])
    wrong = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    is_flickr = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    t = choose(p, wrong, is_flickr, precision=0.75, flickr_share=0.5)
    stats = flagged_stats(p, wrong, is_flickr, t)
    assert stats["precision"] >= 0.75 and stats["flickr8k_flagged"] <= 0.5
    assert t == pytest.approx(0.6)


def test_spherical_kmeans_finds_separated_groups():
    torch.manual_seed(0)
    points = torch.cat([torch.tensor([[1.0, 0, 0]]) + 0.01 * torch.randn(20, 3),
                        torch.tensor([[0, 1.0, 0]]) + 0.01 * torch.randn(20, 3)])
    centres = kmeans_centres(points, 2)
    best = (torch.nn.functional.normalize(points, dim=1) @ centres.T).amax(1)
    assert best.min() > 0.99


def test_a_model_file_carries_its_confidence(tmp_path, vocab):
    from captioner import ModelConfig
    config = ModelConfig(vocab_size=len(vocab), encoder_dim=1280, embed_dim=16, hidden_dim=24,
                         attention_dim=16, image_size=128, concepts=("person", "dog"),
                         imagenet_concepts=("cat",))
    decoder = build_decoder(config)
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("mean_word_prob")] = -50.0  # unsure words -> wrong
    calibrated = model(weights, 0.3, 0.6, torch.nn.functional.normalize(torch.randn(4, 1280), dim=1))
    path = tmp_path / "m.pt"
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 128),
                               decoder.state_dict(), metadata={"confidence": calibrated.to_dict()}),
                    path, half=True)
    again = ConfidenceModel.from_dict(load_checkpoint(path).metadata["confidence"])
    assert again.weights == calibrated.weights and again.centres.shape == (4, 1280)
    caption = Captioner.from_checkpoint(path).caption(photo(), beam_size=2, grounding=False,
                                                      fusion_weight=0.0)[0]
    assert caption.confidence is not None and caption.confidence.verdict in VERDICTS
    assert caption.is_guess == (caption.confidence.verdict == "a guess")
    assert caption.to_dict()["confidence"]["verdict"] == caption.confidence.verdict
