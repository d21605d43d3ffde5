"""The shipped ImageNet -> caption word table and COCO synonym groups (captioner/data)."""
from __future__ import annotations

import re
from importlib import resources

from captioner.imagenet import imagenet_names
from captioner.object_words import ClassWord, from_json, object_words, parse_synonyms

# The fixed set of kinds (scripts/build_object_words.py's KINDS)
KINDS = {"person", "animal", "dog", "bird", "fish", "insect", "food", "fruit", "vegetable",
         "drink", "plant", "vehicle", "boat", "instrument", "clothing", "furniture", "appliance",
         "sports equipment", "toy", "tool", "container", "building", "place", "device"}
PHRASES = {"ice cream", "toilet paper"}  # two-word caption words outside COCO's names


def _by_label():
    names = imagenet_names()
    return {names[i]: c for i, c in object_words().classes.items()}


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


def test_classes_without_a_coco_object_get_the_word_captions_use_and_a_kind():
    table = _by_label()
    assert (table["espresso"].word, table["espresso"].kind) == ("coffee", "drink")
    assert table["space shuttle"].word == table["missile"].word == "rocket"
    assert table["projectile, missile"].word == "rocket"
    assert table["golden retriever"].kind == table["whippet"].kind == "dog"  # kinds follow words
    assert (table["ostrich, Struthio camelus"].word, table["ostrich, Struthio camelus"].kind) == (
        "bird", "bird")
    for label, word in (("llama", "llama"), ("Arabian camel, dromedary, Camelus dromedarius",
                                             "camel"), ("lion, king of beasts, Panthera leo",
                                                        "lion")):
        assert (table[label].word, table[label].kind, table[label].category) == (
            word, "animal", None)
    assert (table["lemon"].word, table["lemon"].kind) == ("lemon", "fruit")
    assert (table["canoe"].word, table["canoe"].kind) == ("boat", "boat")
    assert (table["seashore, coast, seacoast, sea-coast"].word,
            table["seashore, coast, seacoast, sea-coast"].kind) == ("beach", "place")
    assert table["lakeside, lakeshore"].word == "lake"
    assert table["jean, blue jean, denim"].word == "jeans"
    assert table["ram, tup"].word == "sheep" and table["ox"].word == "cow"
    assert table["ibex, Capra ibex"].category == "sheep"  # CHAIR counts goats as sheep
    assert table["fly"].word == "bug"  # not "fly", a verb the tagger would take for the insect


def test_most_classes_have_a_plain_caption_word_of_one_kind():
    table = object_words()
    assert len(table.classes) >= 700
    kind, category = {}, {}
    for c in table.classes.values():
        assert re.fullmatch(r"[a-z]+", c.word) or c.word in table.categories or c.word in PHRASES
        assert c.kind is None or c.kind in KINDS
        assert kind.setdefault(c.word, c.kind) == c.kind  # a word has one kind
        assert category.setdefault(c.word, c.category) == c.category  # and one category
    assert set(table.kinds) == KINDS and set(table.kinds.values()) <= KINDS | {None}
    assert (table.kinds["dog"], table.kinds["fruit"], table.kinds["boat"]) == (
        "animal", "food", "vehicle")
    assert table.kinds["animal"] is None


def test_words_chair_counts_as_a_coco_category_carry_that_category():
    table = object_words()
    synonym_of = {w: name for name, words in table.categories.items() for w in words}
    for c in table.classes.values():
        assert synonym_of.get(c.word, c.category) == c.category, c


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
