"""The training reward's CIDEr-D equals pycocoevalcap's CIDEr on real captions."""
import json
from pathlib import Path

import pytest
from pycocoevalcap.cider.cider import Cider

from captioner.vocab import tokenize
from training.cider import CiderD

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("name", ["soft_test_beam3.json", "hard_test_beam1.json"])
def test_equals_pycocoevalcap_on_real_captions(name):
    """Flickr8k test captions of the shipped models (kept in results/) and their references."""
    captions = json.loads((RESULTS / name).read_text())["captions"][:300]
    hypotheses = {c["image"]: tokenize(c["caption"]) for c in captions}
    references = {c["image"]: [tokenize(r) for r in c["references"]] for c in captions}
    expected_mean, expected = Cider().compute_score(
        {k: [" ".join(r) for r in refs] for k, refs in references.items()},
        {k: [" ".join(words)] for k, words in hypotheses.items()})
    scorer = CiderD(references)
    scores = [scorer.score(key, hypotheses[key]) for key in references]
    assert scores == pytest.approx(list(expected), abs=1e-9)
    assert sum(scores) / len(scores) == pytest.approx(expected_mean, abs=1e-9)
    assert 0.1 < expected_mean < 3  # real, varied captions, not a degenerate case


def test_document_frequencies_come_from_the_given_corpus():
    refs = {"a": [["a", "dog", "runs"]], "b": [["a", "cat", "sleeps"]], "c": [["a", "dog", "sits"]]}
    scorer = CiderD(refs)
    assert scorer.score("a", ["a", "dog", "runs"]) > scorer.score("a", ["a", "dog"]) > 0
    assert scorer.score("a", ["a", "cat", "sleeps"]) < scorer.score("b", ["a", "cat", "sleeps"])
    assert scorer.score("a", []) == 0.0
    with pytest.raises(ValueError):
        CiderD({})
