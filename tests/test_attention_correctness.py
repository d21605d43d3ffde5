"""benchmarks.attention_correctness: regions on the grid, word scores, word -> category -> word
kind, and a tiny end-to-end run over every registered attention."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from benchmarks.attention_correctness import (
    REGION_KINDS, WORD_KINDS, AttendedCaption, Mention, annotation_mask, box_coverage,
    TARGET_SOURCES, load_photos, main, mask_coverage, mentions, on_supervised_words,
    score_captions, score_word, summarise, word_kind)
from captioner import build_decoder
from conftest import photo, tiny_config, write_checkpoint


def test_box_coverage_is_the_exact_fraction_of_each_cell_after_squashing():
    # A 300 x 100 photo squashed onto a 3 x 3 grid: a cell is 100 x 33.3 pixels. The box
    # x 50..250, y 0..50 covers half of columns 0 and 2 and all of column 1; rows: all of row 0
    # (0..33.3) and (50 - 33.3) / 33.3 = 1/2 of row 1.
    coverage = box_coverage([(50, 0, 200, 50)], (300, 100), (3, 3))
    np.testing.assert_allclose(coverage, [[0.5, 1.0, 0.5], [0.25, 0.5, 0.25], [0, 0, 0]])


def test_box_coverage_counts_overlapping_boxes_once_and_clips_to_the_photo():
    # 2 x 2 grid on 20 x 10 px: box A covers cell (0, 0); box B spans grid x 0.5..1.5,
    # y 0.5..1.5, so it adds a quarter of each other cell and nothing to (0, 0); box C lies
    # half outside the photo, on the right of the bottom row: x 1.5..2 of cell (1, 1).
    coverage = box_coverage([(0, 0, 10, 5), (5, 2.5, 10, 5), (15, 5, 10, 5)], (20, 10), (2, 2))
    np.testing.assert_allclose(coverage, [[1.0, 0.25], [0.25, 0.75]])
    assert box_coverage([], (20, 10), (2, 2)).sum() == 0


def test_mask_coverage_splits_pixels_cut_by_a_cell_edge():
    mask = np.zeros((3, 3), dtype=bool)  # 3 x 3 px on a 2 x 2 grid: a cell is 1.5 x 1.5 px
    mask[0, 0] = True
    mask[2, 1] = True  # half in column 0, half in column 1, all in row 1
    np.testing.assert_allclose(mask_coverage(mask, (2, 2)),
                               [[1 / 2.25, 0], [0.5 / 2.25, 0.5 / 2.25]])


def test_a_polygon_through_pycocotools_gives_the_same_cells_as_its_box():
    # A square polygon on a 64 x 48 photo, x 0..32, y 12..36, rasterised by pycocotools.
    polygon = [[0, 12, 32, 12, 32, 36, 0, 36]]
    mask = annotation_mask(polygon, (64, 48))
    assert mask.shape == (48, 64) and mask.sum() == 32 * 24
    np.testing.assert_allclose(mask_coverage(mask, (2, 2)),
                               box_coverage([(0, 12, 32, 24)], (64, 48), (2, 2)))
    np.testing.assert_allclose(mask_coverage(mask, (2, 2)), [[0.5, 0], [0.5, 0]])
    # An uncompressed RLE (a crowd annotation): the first 16 columns, column-major counts.
    crowd = annotation_mask({"counts": [0, 16 * 48, 48 * 48], "size": [48, 64]}, (64, 48))
    assert crowd[:, :16].all() and not crowd[:, 16:].any()


def test_mass_area_and_pointing_on_a_synthetic_map():
    coverage = np.array([[1.0, 0.5], [0.25, 0.0]])
    alpha = np.array([[0.1, 0.6], [0.2, 0.1]])  # peaks at (0, 1), covered exactly half: a miss
    score = score_word(alpha, coverage)
    assert score.mass == pytest.approx(0.1 + 0.3 + 0.05)
    assert score.area == pytest.approx(1.75 / 4)
    assert not score.hit and score.chance == pytest.approx(0.25)  # only (0, 0) is > 0.5 covered
    hit = score_word(np.array([[0.7, 0.1], [0.1, 0.1]]), coverage)
    assert hit.hit and hit.mass == pytest.approx(0.7 + 0.05 + 0.025)
    summary = summarise([score, hit])
    assert summary["words"] == 2 and summary["pointing"] == 0.5
    assert summary["ratio"] == pytest.approx((0.45 + 0.775) / 2 / (1.75 / 4))
    assert summary["mean_word_ratio"] == pytest.approx((0.45 + 0.775) / 2 / (1.75 / 4))
    assert summarise([])["words"] == 0 and summarise([])["ratio"] is None


def test_words_map_to_categories_by_the_projects_word_table():
    """training.objects' table (CHAIR's synonyms): plurals, people, longest names first, and
    only the categories the photos' annotations have."""
    categories = {"person", "dog", "hot dog", "dining table", "bicycle", "sheep"}
    words = "two women and a boy eat hot dogs at the table by the dogs bikes and sheep".split()
    assert mentions(words, categories) == [
        Mention(1, "person"), Mention(4, "person"), Mention(7, "hot dog"),
        Mention(10, "dining table"), Mention(13, "dog"), Mention(14, "bicycle"),
        Mention(16, "sheep")]
    for word in ("man", "men", "woman", "people", "child", "kid", "kids", "person", "player"):
        assert mentions([word], categories) == [Mention(0, "person")], word
    assert mentions(["a", "puppy"], categories) == [Mention(1, "dog")]
    assert mentions(["cat"], categories) == []  # not a category of these annotations


def test_word_kinds_follow_cocos_supercategories():
    assert WORD_KINDS == ("people", "animals", "vehicles", "food", "objects", "all")
    given = {"person": "person", "dog": "animal", "bus": "vehicle", "pizza": "food",
             "chair": "furniture", "tv": "electronic", "kite": "sports", "fork": "kitchen"}
    assert {c: word_kind(c, s) for c, s in given.items()} == {
        "person": "people", "dog": "animals", "bus": "vehicles", "pizza": "food",
        "chair": "objects", "tv": "objects", "kite": "objects", "fork": "objects"}
    # Without a supercategory in the instances file: captioner.grounding's table, and "person".
    assert {c: word_kind(c) for c in given} == {c: word_kind(c, s) for c, s in given.items()}


def test_each_word_counts_under_its_kind_and_all():
    """Hand-made maps and regions on a 2 x 2 grid: one photo with a person, a dog, a bus, a
    pizza and a chair, each filling one cell or more; every word's map peaks on its own cell."""
    cells = {"person": (0, 0), "dog": (0, 1), "bus": (1, 0), "pizza": (1, 1), "chair": (1, 1)}
    regions = {kind: {} for kind in REGION_KINDS}
    for category, (r, c) in cells.items():
        coverage = np.zeros((2, 2))
        coverage[r, c] = 1.0
        for kind in REGION_KINDS:
            regions[kind][category] = coverage
    regions["box"]["chair"] = np.full((2, 2), 0.25)  # the chair's box: a quarter of each cell
    words = "a man feeds his dog pizza on a bus chair and a cat".split()
    peaks = {"man": ("person", 0.4), "dog": ("dog", 0.7), "pizza": ("pizza", 0.55),
             "bus": ("bus", 0.85), "chair": ("chair", 0.61)}  # each word's map differs
    alphas = np.full((len(words), 2, 2), 0.25)
    for word, (category, peak) in peaks.items():
        at = words.index(word)
        alphas[at] = (1 - peak) / 3
        alphas[(at, *cells[category])] = peak
    categories = {"person": "person", "dog": "animal", "bus": "vehicle", "pizza": "food",
                  "chair": "furniture", "cat": "animal"}  # no cat in this photo: not counted
    scores = score_captions([[AttendedCaption(words, alphas)]], [regions], categories)
    dog, pizza, chair = (score_word(alphas[words.index(w)], regions["box"][c])
                         for w, c in (("dog", "dog"), ("pizza", "pizza"), ("chair", "chair")))
    assert scores["box", "animals"] == [dog] and dog.mass == pytest.approx(0.7) and dog.hit
    assert scores["box", "food"] == [pizza]
    assert scores["box", "objects"] == [chair] and chair.mass == pytest.approx(0.25)
    for kind in REGION_KINDS:
        assert {group: len(scores[kind, group]) for group in WORD_KINDS} == {
            "people": 1, "animals": 1, "vehicles": 1, "food": 1, "objects": 1, "all": 5}
        assert sorted(scores[kind, "all"]) == sorted(
            s for group in WORD_KINDS[:-1] for s in scores[kind, group])
    assert scores["box", "all"].count(dog) == 1 and pizza in scores["box", "all"]


def test_teacher_forcing_takes_the_hard_mode_of_the_call(vocab):
    decoder = build_decoder(tiny_config(vocab, "hard", hard_inference="argmax")).eval()
    features = torch.randn(2, 9, 16)
    captions = torch.tensor([vocab.encode(["a", "man", "rides", "a", "bike"]),
                             vocab.encode(["a", "red", "square", "on", "grass"])])
    expecting = copy.deepcopy(decoder)
    expecting.attention.inference = "expectation"
    with torch.no_grad():
        asked = decoder(features, captions, hard_mode="expectation")
        assert torch.equal(asked.alphas, expecting(features, captions).alphas)
        assert not torch.equal(asked.alphas, decoder(features, captions).alphas)  # argmax


def _tiny_coco(root):
    """Two generated photos with references and a COCO instances file: photo 1 has a person
    (polygon) and a bicycle (two boxes), photo 2 a dog (crowd RLE) and no person."""
    (root / "images").mkdir()
    references = [["a man rides a bike", "two dogs run on the beach"],
                  ["a man and two dogs run on the beach", "a red square on grass"]]
    entries, images, annotations = [], [], []
    for index, texts in enumerate(references):
        cocoid, (width, height) = 100 + index, (160, 120)
        photo(width, height, seed=index).save(root / "images" / f"{cocoid}.jpg")
        entries.append({"filename": f"{cocoid}.jpg", "filepath": "images", "cocoid": cocoid,
                        "split": "test", "sentences": [{"tokens": t.split(), "raw": t}
                                                       for t in texts]})
        images.append({"id": cocoid, "width": width, "height": height,
                       "file_name": f"{cocoid:012d}.jpg"})
    annotations = [
        {"id": 1, "image_id": 100, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 50, 80],
         "segmentation": [[10, 10, 60, 10, 60, 90, 10, 90]]},
        {"id": 2, "image_id": 100, "category_id": 2, "iscrowd": 0, "bbox": [70, 60, 40, 40],
         "segmentation": [[70, 60, 110, 60, 110, 100, 70, 100]]},
        {"id": 3, "image_id": 100, "category_id": 2, "iscrowd": 0, "bbox": [100, 70, 40, 40],
         "segmentation": [[100, 70, 140, 70, 140, 110, 100, 110]]},
        {"id": 4, "image_id": 101, "category_id": 18, "iscrowd": 1, "bbox": [0, 0, 40, 120],
         "segmentation": {"counts": [0, 40 * 120, 120 * 120], "size": [120, 160]}},
    ]
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
                  {"id": 18, "name": "dog", "supercategory": "animal"}]
    (root / "dataset.json").write_text(json.dumps({"dataset": "tiny", "images": entries}))
    (root / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    return root / "dataset.json", root / "instances.json"


def test_end_to_end_on_a_tiny_coco_for_every_attention(tmp_path, vocab, attention_kind, capsys):
    data, instances = _tiny_coco(tmp_path)
    checkpoint = write_checkpoint(tmp_path / "model.pt", vocab, attention_kind)
    out = tmp_path / "out" / "result.json"
    rows = main(["--data", str(data), "--instances", str(instances), "--checkpoint",
                 str(checkpoint), "--beam", "2", "--out", str(out)])
    modes = ["expectation", "argmax", "sample"] if attention_kind == "hard" else [None]
    assert len(rows) == len(modes) * 2 * len(REGION_KINDS) * len(WORD_KINDS)
    assert {r.hard_mode for r in rows} == set(modes)
    # References: photo 1 "man" (person), "bike" (bicycle), "dogs" (no dog there: skipped);
    # photo 2 "man" (no person there: skipped), "dogs" (dog).
    expected = {"people": 1, "animals": 1, "vehicles": 1, "food": 0, "objects": 0, "all": 3}
    for row in rows:
        if row.source == "references":
            assert row.words == expected[row.word_kind], row
            if row.words:
                assert 0 <= row.mass <= 1 and 0 < row.area < 1 and 0 <= row.pointing <= 1
                assert row.ratio == pytest.approx(row.mass / row.area)
            else:
                assert row.mass is None and row.ratio is None
        else:
            assert row.words >= 0
    saved = json.loads(out.read_text())
    assert saved["photos"] == 2 and len(saved["rows"]) == len(rows)
    assert [r["word_kind"] for r in saved["rows"][:len(WORD_KINDS)]] == list(WORD_KINDS)
    table = capsys.readouterr().out
    assert "references" in table
    assert sum(line.split()[5:6] == ["animals"] for line in table.splitlines()) == len(rows) // 6


def test_the_tune_and_check_halves_split_the_photos_by_coco_id(tmp_path):
    data, instances = _tiny_coco(tmp_path)  # COCO ids 100 and 101
    every = [p.cocoid for p in load_photos(data, instances)[0]]
    tune = [p.cocoid for p in load_photos(data, instances, part="tune")[0]]
    check = [p.cocoid for p in load_photos(data, instances, part="check")[0]]
    assert every == [100, 101] and tune == [100] and check == [101]


def test_each_temperature_gets_its_rows_and_a_bad_one_is_refused(tmp_path, vocab, capsys):
    data, instances = _tiny_coco(tmp_path)
    checkpoint = write_checkpoint(tmp_path / "model.pt", vocab, "soft")
    common = ["--data", str(data), "--instances", str(instances), "--checkpoint",
              str(checkpoint), "--beam", "2"]
    rows = main(common + ["--temperatures", "1,0.5"])
    assert sorted({r.temperature for r in rows}) == [0.5, 1.0]
    assert len(rows) == 2 * 2 * len(REGION_KINDS) * len(WORD_KINDS)
    # the references' words do not depend on the temperature, only their maps do
    by_t = {t: [r for r in rows if r.temperature == t and r.source == "references"]
            for t in (0.5, 1.0)}
    assert [r.words for r in by_t[0.5]] == [r.words for r in by_t[1.0]]
    with pytest.raises(SystemExit):
        main(common + ["--temperatures", "0"])
    assert "--temperatures" in capsys.readouterr().err


def test_target_rows_score_the_targets_on_the_supervised_words_only(vocab):
    """A caption "a man and a dogs" (the test vocabulary's word): only "dogs" has a target
    (concept 0), a map peaking on the dog's cell while the model's map peaks elsewhere."""
    words = ["a", "man", "and", "a", "dogs"]
    alphas = np.full((len(words), 2, 2), 0.25)
    alphas[4] = [[0.7, 0.1], [0.1, 0.1]]  # the model looks at the top left
    word_concepts = torch.full((len(vocab),), -1)
    word_concepts[vocab.stoi["dogs"]] = 0
    maps = np.zeros((1, 1, 2, 2))
    maps[0, 0, 1, 1] = 1.0  # the target: all on the bottom right, where the dog is
    models, targets = on_supervised_words([[AttendedCaption(words, alphas)]], vocab,
                                          word_concepts, maps)
    assert np.isnan(models[0][0].alphas[1]).all() and np.isnan(targets[0][0].alphas[1]).all()
    np.testing.assert_array_equal(models[0][0].alphas[4], alphas[4])
    dog = np.zeros((2, 2))
    dog[1, 1] = 1.0
    person = np.ones((2, 2))
    regions = {kind: {"dog": dog, "person": person} for kind in REGION_KINDS}
    categories = {"dog": "animal", "person": "person"}
    on_model = score_captions(models, [regions], categories)
    on_target = score_captions(targets, [regions], categories)
    every = score_captions([[AttendedCaption(words, alphas)]], [regions], categories)
    assert len(every["box", "all"]) == 2  # "man" and "dog"
    assert len(on_model["box", "all"]) == len(on_target["box", "all"]) == 1  # "dog" alone
    assert not on_model["box", "all"][0].hit and on_model["box", "all"][0].mass == 0.1
    assert on_target["box", "all"][0].hit and on_target["box", "all"][0].mass == 1.0


def test_a_model_that_reads_concepts_gets_its_targets_rows(tmp_path, vocab):
    data, instances = _tiny_coco(tmp_path)
    checkpoint = write_checkpoint(tmp_path / "model.pt", vocab, "soft",
                                  concepts=("person", "dog", "bicycle"))
    rows = main(["--data", str(data), "--instances", str(instances), "--checkpoint",
                 str(checkpoint), "--beam", "2"])
    by_source = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row)
    assert set(by_source) == {"own", "references"} | {
        name for _, *names in TARGET_SOURCES for name in names}
    words = {source: {(r.region, r.word_kind): r.words for r in rows}
             for source, rows in by_source.items()}
    # The same words on both sides; "bike" has no concept (only "bicycle" does): not counted.
    assert words["refs:model"] == words["refs:target"]
    assert words["refs:target"]["box", "all"] == 2  # "man" (person) and "dogs" (dog)
    assert words["references"]["box", "all"] == 3
