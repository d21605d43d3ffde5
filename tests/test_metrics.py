"""Caption metrics. The standard (Java) path runs METEOR once, in one module-scoped fixture;
everything else uses the pure-Python path or the PTB tokenizer alone, so it stays fast."""
from __future__ import annotations

import pytest

from training import metrics
from training.metrics import CaptionScores, corpus_bleu4, java_available, score_captions

KEYS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
REFERENCES = {
    "dog.jpg": ["A dog runs across the green grass.", "A brown dog is running on grass",
                "The dog runs outside"],
    "cat.jpg": ["A cat sits on a red mat.", "The cat is sitting on a mat",
                "A small cat rests indoors"],
    "bike.jpg": ["A man rides a bike down the road.", "A person is cycling on a street",
                 "A man on a bicycle"],
    "beach.jpg": ["Two children play on the beach.", "Kids are playing in the sand",
                  "Two kids at the sea"],
    "snow.jpg": ["A skier goes down a snowy hill.", "A person skiing in the snow",
                 "Someone skis down a mountain"],
}
IDENTICAL = {k: refs[0] for k, refs in REFERENCES.items()}
UNRELATED = {k: "purple elephants juggle quantum spreadsheets" for k in REFERENCES}
# Simple lowercase words, so the PTB and pure-Python tokenizers agree.
PARTIAL = {"dog.jpg": "a dog runs on the grass", "cat.jpg": "a cat is sitting on a mat",
           "bike.jpg": "a man rides a bike on the street", "beach.jpg": "",
           "snow.jpg": "a person skiing down a hill"}
needs_java = pytest.mark.skipif(not java_available(), reason="no java on PATH")


@pytest.fixture
def no_java(monkeypatch):
    """The no-Java machine: `which java` finds nothing and no subprocess may start."""
    monkeypatch.setattr(metrics.shutil, "which", lambda name, *a, **k: None)

    def refuse(*args, **kwargs):
        raise AssertionError("no subprocess may start without Java")

    monkeypatch.setattr(metrics.subprocess, "run", refuse)
    monkeypatch.setattr(metrics.subprocess, "Popen", refuse)


@pytest.fixture(scope="module")
def standard_scores():
    """One call through PTB tokenization and METEOR (java start-up and its paraphrase table
    take several seconds), recording the METEOR scorer and what reached stdout."""
    if not java_available():
        pytest.skip("no java on PATH")
    import contextlib
    import io

    import pycocoevalcap.meteor.meteor as meteor_module

    made, original = [], meteor_module.Meteor

    def recording_meteor():
        made.append(original())
        return made[-1]

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout):
        patch.setattr(meteor_module, "Meteor", recording_meteor)
        scores = score_captions(PARTIAL, REFERENCES)
    return scores, stdout.getvalue(), made


@pytest.mark.slow
def test_standard_path_computes_all_seven_metrics_with_meteor(standard_scores):
    scores, stdout, meteors = standard_scores
    values = scores.as_dict()
    assert list(values) == KEYS
    assert all(isinstance(v, float) for v in values.values())
    assert 0.0 < scores.meteor < 1.0
    assert scores.notes == ()
    assert stdout == ""  # BLEU's prints and java's output stay off stdout
    assert len(meteors) == 1 and meteors[0].meteor_p.poll() is not None  # java has exited


@pytest.mark.slow
def test_corpus_bleu4_agrees_with_standard_bleu4(standard_scores):
    scores, _, _ = standard_scores
    assert corpus_bleu4(PARTIAL, REFERENCES) == pytest.approx(scores.bleu4, abs=0.01)


@needs_java
def test_ptb_tokenization_keeps_captions_aligned():
    predictions = {1: "A dog's ball,\nred.", 2: "", 3: "x ||| y\r\nz"}
    references = {1: ["A dog!"], 2: ["Cats -- two of them."], 3: ["...", "Last one."]}
    res, gts = metrics._ptb_tokenize([1, 2, 3], predictions, references)
    assert res == {1: ["a dog 's ball red"], 2: [""], 3: ["x | | | y z"]}
    assert gts == {1: ["a dog"], 2: ["cats two of them"], 3: ["", "last one"]}


def test_identical_captions_score_high(no_java):
    scores = score_captions(IDENTICAL, REFERENCES)
    assert scores.bleu1 == pytest.approx(1.0, abs=1e-6)
    assert scores.bleu4 == pytest.approx(1.0, abs=1e-6)
    assert scores.rouge_l == pytest.approx(1.0, abs=1e-6)
    assert scores.cider > 3.0


def test_unrelated_captions_score_low(no_java):
    scores = score_captions(UNRELATED, REFERENCES)
    assert scores.bleu1 < 0.05 and scores.bleu4 < 0.01
    assert scores.rouge_l < 0.05 and scores.cider < 0.05


def test_without_java_meteor_is_none_with_a_note_and_the_rest_is_computed(no_java, capsys):
    scores = score_captions(PARTIAL, REFERENCES)
    values = scores.as_dict()
    assert list(values) == KEYS
    assert values["METEOR"] is None
    assert any("METEOR skipped: Java not found" in note and "install a Java runtime" in note
               for note in scores.notes)
    assert all(isinstance(values[k], float) and values[k] > 0 for k in KEYS if k != "METEOR")
    assert capsys.readouterr().out == ""


def test_empty_predictions_do_not_crash_and_score_zero(no_java):
    scores = score_captions({k: "" for k in REFERENCES}, REFERENCES)
    assert scores.bleu1 == pytest.approx(0.0, abs=1e-6)
    assert scores.rouge_l == 0.0 and scores.cider == 0.0
    assert corpus_bleu4({k: "..." for k in REFERENCES}, REFERENCES) == pytest.approx(0, abs=1e-6)


def test_broken_java_falls_back_with_notes(monkeypatch):
    """java on PATH but unusable: scores still come back, and the notes say what failed."""
    monkeypatch.setattr(metrics, "java_available", lambda: True)

    def broken(*args, **kwargs):
        raise OSError("java: cannot execute binary file")

    monkeypatch.setattr(metrics, "_ptb_tokenize", broken)
    monkeypatch.setattr(metrics, "_meteor", broken)
    scores = score_captions(PARTIAL, REFERENCES)
    assert scores.meteor is None and scores.bleu4 > 0
    assert any(n.startswith("PTB tokenizer failed") for n in scores.notes)
    assert any(n.startswith("METEOR failed") for n in scores.notes)


def test_corpus_bleu4_equals_pure_python_bleu4(no_java):
    assert corpus_bleu4(PARTIAL, REFERENCES) == score_captions(PARTIAL, REFERENCES).bleu4
    assert corpus_bleu4(IDENTICAL, REFERENCES) == pytest.approx(1.0, abs=1e-6)


def test_as_dict_maps_fields_to_the_standard_names():
    scores = CaptionScores(0.1, 0.2, 0.3, 0.4, None, 0.5, 0.6, notes=("x",))
    assert scores.as_dict() == {"BLEU-1": 0.1, "BLEU-2": 0.2, "BLEU-3": 0.3, "BLEU-4": 0.4,
                                "METEOR": None, "ROUGE-L": 0.5, "CIDEr": 0.6}


@pytest.mark.parametrize("score", [score_captions, corpus_bleu4])
def test_mismatched_keys_are_a_value_error(score):
    with pytest.raises(ValueError, match="same image ids.*'extra.jpg'"):
        score({**IDENTICAL, "extra.jpg": "a dog"}, REFERENCES)
    with pytest.raises(ValueError, match="no prediction.*'dog.jpg'"):
        score({k: v for k, v in IDENTICAL.items() if k != "dog.jpg"}, REFERENCES)


@pytest.mark.parametrize("refs", [[], [""], ["  "]])
def test_an_image_without_references_is_a_value_error(refs):
    with pytest.raises(ValueError, match="'dog.jpg' has no reference"):
        score_captions(IDENTICAL, {**REFERENCES, "dog.jpg": refs})


def test_bad_input_types_and_empty_input():
    with pytest.raises(ValueError, match="no predictions"):
        score_captions({}, {})
    with pytest.raises(TypeError, match="list of strings"):
        score_captions(IDENTICAL, {**REFERENCES, "dog.jpg": "a dog runs"})
    with pytest.raises(TypeError, match="must be a string"):
        score_captions({**IDENTICAL, "dog.jpg": ["a", "dog"]}, REFERENCES)
