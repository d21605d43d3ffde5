"""Caption confidence: its features, verdicts, and the model file that carries it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from captioner import Captioner, Checkpoint, build_decoder, load_checkpoint, save_checkpoint
from captioner.confidence import (FEATURES, UNNAMED_FEATURES, VERDICTS, ConfidenceModel, Evidence,
                                  read)
from captioner.encoder import preprocessing_for
from conftest import photo
from scripts.calibrate_confidence import (Bounds, choose, cross_validate, fit, flagged_stats,
                                          kmeans_centres)


def evidence(words, probs=None, imagenet=None, novelty=0.1, **detected):
    words = words.split()
    return Evidence(words, probs or [0.6] * len(words), detected, imagenet or {}, novelty)


def test_every_feature_is_computed_by_name():
    values = read(evidence("a dog on a sofa", dog=0.5)).values
    assert set(values) == set(FEATURES) and len(FEATURES) == 14
    assert all(np.isfinite(v) for v in values.values())
    assert UNNAMED_FEATURES == FEATURES[:7]


def test_a_person_the_detector_does_not_see_is_a_reason():
    values, reasons = read(evidence("a man in a kitchen", person=0.05, kitchen=0.9))
    assert values["person_unseen"] == pytest.approx(0.95)
    assert "person detector gives 5%" in reasons["person_unseen"]
    values, reasons = read(evidence("a man in a kitchen", person=0.95, kitchen=0.9))
    assert values["person_unseen"] == pytest.approx(0.05)
    assert "person_unseen" not in reasons and "person_unsaid" not in reasons
    values, reasons = read(evidence("a dog in a kitchen", person=0.9, dog=0.9))
    assert values["person_unsaid"] == pytest.approx(0.9)
    assert "names no one" in reasons["person_unsaid"]


def test_named_objects_without_evidence_and_sure_objects_left_out():
    values, reasons = read(evidence("a dog on a sofa", dog=0.02, cat=0.9, person=0.0))
    assert values["weakest_named"] == pytest.approx(0.98)
    assert values["surest_unnamed"] == pytest.approx(0.9)
    assert '"dog"' in reasons["weakest_named"] and '"cat"' in reasons["surest_unnamed"]
    values, _ = read(evidence("two cats on a sofa", cat=0.9))  # plural names the concept
    assert values["surest_unnamed"] == 0.0
    assert values["weakest_named"] == pytest.approx(0.1)


def test_objects_are_read_by_coco_category():
    # "puppy" names the category dog, whose evidence is its best concept word, detected or
    # ImageNet; the cat is left out and surer than anything named.
    values, reasons = read(evidence("a puppy on a sofa", imagenet={"dog": 0.02}, dog=0.01,
                                    cat=0.9))
    assert values["no_object"] == 0.0
    assert values["weakest_object"] == pytest.approx(0.98)
    assert values["surest_unnamed_object"] == pytest.approx(0.9)
    assert values["unnamed_object_margin"] == pytest.approx(0.9 - 0.02)
    assert '"dog"' in reasons["weakest_object"] and '"cat"' in reasons["unnamed_object_margin"]
    values, reasons = read(evidence("a man standing", person=0.9, cat=0.3))
    assert values["no_object"] == 1.0 and values["weakest_object"] == 0.0
    assert values["unnamed_object_margin"] == pytest.approx(0.3)
    assert "names no object" in reasons["no_object"]


def test_an_imagenet_concept_left_out_and_the_word_measures():
    tags = {"toilet": 0.8, "dog": 0.95}
    values, reasons = read(evidence("a dog in a room", [1.0, 0.25, 1.0, 1.0, 1.0], tags))
    assert values["surest_unnamed_tag"] == pytest.approx(0.8)  # the dog is named
    assert '"toilet"' in reasons["surest_unnamed_tag"]
    assert values["geomean_word_prob"] == pytest.approx(0.25 ** 0.2)
    assert values["mean_word_prob"] == pytest.approx(0.85)
    assert values["min_word_prob"] == 0.25 and values["caption_length"] == 5.0
    values, reasons = read(evidence("a toilet", [0.01, 0.01], {"toilet": 0.8}))
    assert values["surest_unnamed_tag"] == 0.0
    assert '"a"' in reasons["min_word_prob"]


def model(weights: dict, unsure=0.5, guess=0.8, centres=None, bias=0.0):
    names = tuple(weights)
    n = len(names)
    return ConfidenceModel((0.0,) * n, (1.0,) * n, tuple(weights.values()), bias, unsure, guess,
                           centres, names)


def test_verdicts_follow_the_thresholds():
    judge = model({"person_unseen": 10.0}, unsure=0.3, guess=0.9, bias=-5.0).judge
    assert judge(evidence("a man", person=0.0)).verdict == "a guess"  # p = sigmoid(5)
    assert judge(evidence("a man", person=0.4)).verdict == "unsure"  # p = sigmoid(1) = 0.73
    right = judge(evidence("a man", person=1.0))
    assert right.verdict == "probably right" and right.reasons == ()
    with pytest.raises(ValueError):
        model({"person_unseen": 10.0}, unsure=0.9, guess=0.5)


def test_a_caption_more_likely_wrong_than_right_is_never_probably_right():
    judge = model({"person_unseen": 10.0}, unsure=0.8, guess=0.9, bias=-5.0).judge
    at_half = judge(evidence("a man", person=0.5))  # p = 0.5, below the unsure threshold
    assert at_half.p_wrong == pytest.approx(0.5) and at_half.verdict == "unsure"
    assert judge(evidence("a man", person=0.6)).verdict == "probably right"  # p = 0.27


def test_reasons_are_what_pushed_towards_wrong_strongest_first_one_per_subject():
    names = ("person_unseen", "weakest_named", "weakest_object", "novelty", "mean_word_prob")
    judge = ConfidenceModel((0.0, 0.0, 0.0, 0.0, 0.6), (1.0,) * 5, (2.0, 1.0, 3.0, -1.0, -0.5),
                            0.0, 0.1, 0.9, None, names).judge
    verdict = judge(evidence("a man with a dog", [0.1] * 5, novelty=0.9, person=0.0, dog=0.05))
    # weakest_object (3 * 0.95) before the person (2 * 1.0); weakest_named says the same
    # thing about the dog and is left out; the novel photo pulled towards right, so it is no
    # reason; the unsure words are the third.
    assert verdict.reasons == ('little evidence for "dog" (5%)',
                               "it names a person, but the person detector gives 0%",
                               "the model was unsure of its words (on average 10%)")


def test_a_model_computes_the_features_it_names_in_its_order():
    subset = model({"no_object": 2.0, "min_word_prob": -4.0}, bias=-1.0)
    again = ConfidenceModel.from_dict(subset.to_dict())
    assert again == subset and again.features == ("no_object", "min_word_prob")
    shown = again.judge(evidence("a man standing", [0.5, 0.5, 0.5], person=0.9))
    assert shown.p_wrong == pytest.approx(1 / (1 + np.exp(-(-1.0 + 2.0 - 2.0))))


def test_a_stored_model_without_feature_names_was_fitted_on_the_first_seven():
    old = {"mean": [0.5] * 7, "scale": [0.2] * 7, "weights": [0.1, -0.3, 0.2, 0.1, 0.7, 0.4, -0.3],
           "bias": -0.2, "unsure": 0.45, "guess": 0.7,
           "centres": torch.nn.functional.normalize(torch.randn(3, 8), dim=1).half()}
    loaded = ConfidenceModel.from_dict(old)
    assert loaded.features == UNNAMED_FEATURES
    e = evidence("a man on a sofa", [0.9, 0.4, 0.7, 0.3, 0.8], person=0.2, sofa=0.1, dog=0.8)
    values = read(e).values
    z = old["bias"] + sum(w * (values[f] - 0.5) / 0.2 for w, f in zip(old["weights"], FEATURES))
    assert loaded.judge(e).p_wrong == pytest.approx(1 / (1 + np.exp(-z)))


def test_a_stored_model_this_version_cannot_read_is_refused_with_the_reason():
    future = model({"min_word_prob": -1.0}).to_dict()
    future["features"] = ["min_word_prob", "sentiment"]
    future["mean"], future["scale"], future["weights"] = [0.0] * 2, [1.0] * 2, [-1.0, 1.0]
    with pytest.raises(ValueError, match="sentiment"):
        ConfidenceModel.from_dict(future)
    with pytest.raises(ValueError, match="missing: weights"):
        ConfidenceModel.from_dict({k: v for k, v in future.items() if k != "weights"})
    with pytest.raises(ValueError, match="unknown fields: temperature"):
        ConfidenceModel.from_dict({**model({"min_word_prob": -1.0}).to_dict(), "temperature": 2})


def test_novelty_is_the_distance_to_the_nearest_centre():
    centres = torch.nn.functional.normalize(torch.eye(3, 4), dim=1)
    grid = torch.zeros(2, 5, 4)
    grid[0, :, 0] = 1.0  # on a centre
    grid[1, :, 3] = 1.0  # orthogonal to all
    assert model({"novelty": 1.0}, centres=centres).novelty(grid).tolist() == \
        pytest.approx([0.0, 1.0])


def test_thresholds_meet_the_precision_and_flickr_bounds():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.75, 0.1])
    wrong = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    is_flickr = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    t = choose(p, wrong, is_flickr, precision=0.75, flickr_share=0.5)
    stats = flagged_stats(p, wrong, is_flickr, t)
    assert stats["precision"] >= 0.75 and stats["flickr8k_flagged"] <= 0.5
    assert t == pytest.approx(0.6)


def separable(n_coco=60, n_flickr=200, seed=0):
    """Two features; the first says wrong, the second is noise."""
    rng = np.random.default_rng(seed)
    is_flickr = np.array([False] * n_coco + [True] * n_flickr)
    wrong = rng.random(len(is_flickr)) < np.where(is_flickr, 0.1, 0.5)
    x = np.stack([wrong * 2.0 + rng.normal(0, 0.5, len(wrong)), rng.normal(0, 1, len(wrong))], 1)
    return x, wrong, is_flickr


def test_fit_never_lets_a_likely_wrong_caption_be_probably_right():
    x, wrong, is_flickr = separable()
    fitted = fit(x, wrong, is_flickr, Bounds(precision=1.0, flickr8k_share=0.0), l2=1.0)
    assert fitted.unsure <= 0.5 and fitted.unsure <= fitted.guess  # bounds infeasible here
    assert fitted.weights[0] > 0 and abs(fitted.weights[1]) < fitted.weights[0]


def test_cross_validation_refits_in_every_fold_and_holds_on_separable_data():
    x, wrong, is_flickr = separable()
    result = cross_validate(x, wrong, is_flickr, Bounds(), l2=1.0, folds=5, repeats=2)
    assert len(result["per_repeat"]["unsure"]) == 2
    assert result["unsure"]["precision"] >= 0.8 and result["unsure"]["recall"] >= 0.8
    assert result["unsure"]["flickr8k_flagged"] <= 0.2
    assert result["unsure"]["coco_wrong"] == int((wrong & ~is_flickr).sum())


def test_spherical_kmeans_finds_separated_groups():
    torch.manual_seed(0)
    points = torch.cat([torch.tensor([[1.0, 0, 0]]) + 0.01 * torch.randn(20, 3),
                        torch.tensor([[0, 1.0, 0]]) + 0.01 * torch.randn(20, 3)])
    centres = kmeans_centres(points, 2)
    best = (torch.nn.functional.normalize(points, dim=1) @ centres.T).amax(1)
    assert best.min() > 0.99


def tiny_file(tmp_path, vocab, confidence: dict):
    from captioner import ModelConfig
    config = ModelConfig(vocab_size=len(vocab), encoder_dim=1280, embed_dim=16, hidden_dim=24,
                         attention_dim=16, image_size=128, concepts=("person", "dog"),
                         imagenet_concepts=("cat",))
    path = tmp_path / "m.pt"
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 128),
                               build_decoder(config).state_dict(),
                               metadata={"confidence": confidence}), path, half=True)
    return path


def test_a_model_file_carries_its_confidence(tmp_path, vocab):
    weights = dict.fromkeys(FEATURES, 0.0) | {"mean_word_prob": -50.0}  # unsure words -> wrong
    calibrated = model(weights, 0.3, 0.6, torch.nn.functional.normalize(torch.randn(4, 1280), dim=1))
    path = tiny_file(tmp_path, vocab, calibrated.to_dict())
    again = ConfidenceModel.from_dict(load_checkpoint(path).metadata["confidence"])
    assert again.weights == calibrated.weights and again.centres.shape == (4, 1280)
    assert again.features == FEATURES
    caption = Captioner.from_checkpoint(path).caption(photo(), beam_size=2, grounding=False,
                                                      fusion_weight=0.0)[0]
    assert caption.confidence is not None and caption.confidence.verdict in VERDICTS
    assert caption.is_guess == (caption.confidence.verdict == "a guess")
    assert caption.to_dict()["confidence"]["verdict"] == caption.confidence.verdict


def test_a_file_whose_confidence_cannot_be_read_loads_without_one(tmp_path, vocab):
    future = model({"min_word_prob": -1.0}).to_dict() | {"features": ["sentiment"]}
    path = tiny_file(tmp_path, vocab, future)
    with pytest.warns(UserWarning, match="sentiment"):
        captioner = Captioner.from_checkpoint(path)
    assert captioner.confidence is None and "sentiment" in captioner.confidence_refused
    caption = captioner.caption(photo(), beam_size=1, grounding=False, fusion_weight=0.0)[0]
    assert caption.confidence is None and caption.to_dict()["confidence"] is None
