"""The shipped ImageNet -> caption word table and COCO synonym groups (captioner/data)."""
from __future__ import annotations

from importlib import resources

from captioner.imagenet import imagenet_names
from captioner.object_words import ClassWord, from_json, object_words, parse_synonyms


def test_examples_walk_to_the_words_captions_use():
    names = imagenet_names()
    words = {names[i]: c.word for i, c in object_words().classes.items()}
    assert words["golden retriever"] == "dog"
    assert words["tabby, tabby cat"] == words["Egyptian cat"] == "cat"
    assert words["Indian elephant, Elephas maximus"] == "elephant"
    assert words["refrigerator, icebox"] == "refrigerator"
    assert words["pizza, pizza pie"] == "pizza"
    assert words["school bus"] == "bus"
    assert words["laptop, laptop computer"] == "laptop"
    assert words["kite"] == "bird"  # ImageNet's kite is the bird


def test_a_table_without_kinds_still_loads():
    old = {"people": "person", "categories": {"person": ["person"], "dog": ["dog", "puppy"]},
           "classes": {"207": {"label": "golden retriever", "word": "dog", "category": "dog",
                               "depth": 4, "target": "dog.n.01"}}}
    table = from_json(old)
    assert table.classes[207] == ClassWord("golden retriever", "dog", "dog", 4, "dog.n.01")
    assert table.classes[207].kind is None and dict(table.kinds) == {} and not table.similar


def test_table_is_consistent_with_imagenet_and_the_synonym_file():
    table = object_words()
    names = imagenet_names()
    for index, c in table.classes.items():
        assert 0 <= index < 1000 and c.label == names[index] and c.depth >= 0
        assert c.category is None or c.category in table.categories
    text = resources.files("captioner").joinpath("data", "coco_synonyms.txt").read_text("utf-8")
    assert parse_synonyms(text) == (dict(table.categories), table.people)  # JSON rebuilt
    assert len(table.categories) == 80 and table.people == "person"


def test_parse_synonyms_marks_people_and_collapses_spaces():
    categories, people = parse_synonyms("# comment\n*person, man,  woman\nhot dog, hotdog\n")
    assert categories == {"person": ("person", "man", "woman"), "hot dog": ("hot dog", "hotdog")}
    assert people == "person"
