"""Object measures over tiny hand-made captions (training/objects.py)."""
from __future__ import annotations

import json

import pytest

from training.objects import (PERSON_WORDS, CaptionErrors, caption_errors, caption_objects,
                              load_instances, names_people, object_measures, object_mentions)


@pytest.mark.parametrize("text, objects", [
    ("Two dogs run on the beach.", {"dog"}),
    ("A Dog and a CAT", {"dog", "cat"}),
    ("Buses and trucks wait at the lights", {"bus", "truck"}),
    ("knives, forks and spoons", {"knife", "fork", "spoon"}),
    ("puppies on a couch", {"dog", "couch"}),
    ("people, men and women", {"person"}),
    ("a girl holds a hot dog", {"person", "hot dog"}),  # not a dog
    ("two hot dogs and a teddy bear", {"hot dog", "teddy bear"}),  # not a bear
    ("a man on his cell phone near a fire hydrant", {"person", "cell phone", "fire hydrant"}),
    ("wine glasses on a dining table", {"wine glass", "dining table"}),
    ("a baby elephant", {"elephant"}),  # CHAIR: not a person
    ("the passenger train", {"train"}),
    ("a toilet seat is up", {"toilet"}),  # not a chair
    ("a bike, a motor bike and a scooter", {"bicycle", "motorcycle"}),
    ("a grassy field under a blue sky", set()),
])
def test_caption_objects(text, objects):
    assert caption_objects(text) == objects


def test_mentions_keep_repeats_in_order():
    assert object_mentions("a dog chases a cat and another dog") == ["dog", "cat", "dog"]


REFS = {
    "a.jpg": ["a dog on the grass", "a brown dog runs", "a puppy plays with a ball",
              "a man and his dog", "an animal outside"],  # main object: dog (4 of 5)
    "b.jpg": ["a cat sleeps on a bed", "a kitten on a bed", "a cat on a blanket",
              "a pet sleeping", "a bed with a cat on it"],  # main: cat (4) and bed (3)
    "c.jpg": ["a man walks", "a woman walks", "people walk", "a man in a street",
              "a man and a dog"],  # people only: no main object
}


def test_main_object_named_and_chair():
    predictions = {"a.jpg": "a dog runs with a frisbee",  # names dog; frisbee hallucinated
                   "b.jpg": "a bed in a room",  # names bed (a main object)
                   "c.jpg": "a man and a woman walk a dog"}  # the dog is in a reference
    m = object_measures(predictions, REFS)
    assert m.photos_with_main_object == 2 and m.main_object_named == 1.0
    assert m.captions == 3 and m.chair_s == pytest.approx(1 / 3)
    assert m.mentions == 4 and m.hallucinated_mentions == 1 and m.chair_i == 0.25
    assert dict(m.hallucinated) == {"a.jpg": ("frisbee",)}
    assert not m.count_people and not m.with_instances

    missed = object_measures({"a.jpg": "a cat on the grass", "b.jpg": "a dog"}, REFS)
    assert missed.main_object_named == 0.0 and missed.chair_s == 1.0 and missed.chair_i == 1.0


def test_people_count_only_when_asked():
    predictions = {"a.jpg": "a girl with a dog"}  # no reference names a person
    refs = {"a.jpg": ["a dog", "a dog", "a dog", "a dog", "a dog"]}
    assert object_measures(predictions, refs).chair_s == 0.0
    counted = object_measures(predictions, refs, count_people=True)
    assert counted.count_people and counted.chair_s == 1.0 and counted.chair_i == 0.5


def test_instances_join_the_ground_truth():
    predictions = {"a.jpg": "a dog with a frisbee", "b.jpg": "a cat and a remote"}
    instances = {"a.jpg": {"dog", "frisbee"}}  # b.jpg: no annotations
    m = object_measures(predictions, REFS, instances)
    assert m.with_instances and m.chair_s == 0.5 and dict(m.hallucinated) == {"b.jpg": ("remote",)}


def test_load_instances(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({
        "images": [{"id": 139, "file_name": "000000000139.jpg"}, {"id": 7, "file_name": "7.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [{"image_id": 139, "category_id": 18}, {"image_id": 139, "category_id": 1},
                        {"image_id": 139, "category_id": 18}]}))
    assert load_instances(path) == {139: {"person", "dog"}, 7: set()}
    assert load_instances(path, key="file_name")["000000000139.jpg"] == {"person", "dog"}
    with pytest.raises(ValueError):
        load_instances(path, key="url")


@pytest.mark.parametrize("text, named", [
    ("He rides a bike", True), ("she sits", True), ("Someone skis", True),
    ("two men and three women", True), ("the girls and their kids", True),  # plurals
    ("children play", True), ("a man's hat", True), ("a crowd watches", True),
    ("a dog", False), ("the theme of a sheep show", False),  # "he", "she" only as whole words
    ("a human shadow", False),  # not on the list
])
def test_names_people(text, named):
    assert names_people(text) is named


def test_person_words_are_the_defined_list():
    assert len(PERSON_WORDS) == 35 and {"he", "she", "someone", "skateboarder"} <= PERSON_WORDS


PEOPLE_REFS = {
    "park.jpg": ["a man and a woman on a bench", "two people sit in a park", "a couple rests",
                 "a bench in the park", "trees and a bench"],  # person words in 3 of 5
    "field.jpg": ["a dog runs in a field", "a brown dog in the grass", "a boy plays with a dog",
                  "a dog outside", "a dog on grass"],  # a person word in 1 of 5
    "kitchen.jpg": ["a kitchen with a stove", "an oven in a kitchen", "a stove and a sink",
                    "a clean kitchen", "a kitchen"],  # no one; main object: oven (stove)
    "street.jpg": ["a man walks", "a woman walks", "a street", "a road with cars",
                   "cars"],  # person words in 2 of 5: not enough to say people are there
    "beach.jpg": ["a surfboard on the sand", "a surfboard", "a yellow surfboard", "the beach",
                  "sand"],  # no one; main object: surfboard
}
PEOPLE_PREDICTIONS = {
    "park.jpg": "she sits on a bench",
    "field.jpg": "a man throws a frisbee to a dog",  # a man in 1 reference; frisbee in none
    "kitchen.jpg": "he cooks in a kitchen",  # no reference has anyone; misses the oven
    "street.jpg": "cars on a road",
    "beach.jpg": "a sandy beach",  # misses the surfboard, invents nothing
}


def test_people_and_anything_invented():
    m = object_measures(PEOPLE_PREDICTIONS, PEOPLE_REFS)
    assert m.people_invented == pytest.approx(1 / 5)  # kitchen only, not field
    assert m.chair_s == pytest.approx(1 / 5) and dict(m.hallucinated) == {"field.jpg": ("frisbee",)}
    assert m.anything_invented == pytest.approx(2 / 5)  # field (an object), kitchen (people)
    assert m.photos_with_people == 1 and m.people_named_where_present == 1.0  # park only
    assert m.as_dict()["people_invented"] == m.people_invented
    assert {"anything_invented", "people_named_where_present",
            "photos_with_people"} <= set(m.as_dict())

    both = object_measures({"kitchen.jpg": "a man and a cat in a kitchen"}, PEOPLE_REFS)
    assert both.people_invented == both.chair_s == both.anything_invented == 1.0  # counted once


def test_a_model_that_never_names_people_is_caught():
    silent = {**PEOPLE_PREDICTIONS, "park.jpg": "a bench in a park"}
    m = object_measures(silent, PEOPLE_REFS)
    assert m.photos_with_people == 1 and m.people_named_where_present == 0.0
    assert object_measures({"street.jpg": "cars"}, PEOPLE_REFS).photos_with_people == 0


def test_people_are_judged_from_the_references_only():
    instances = {"kitchen.jpg": {"person", "oven"}}  # annotated, but no reference says so
    m = object_measures({"kitchen.jpg": "he cooks"}, PEOPLE_REFS, instances)
    assert m.people_invented == 1.0 and m.chair_s == 0.0


def test_caption_errors_per_photo():
    errors = caption_errors(PEOPLE_PREDICTIONS, PEOPLE_REFS)
    assert errors == {
        "park.jpg": CaptionErrors(False, False, False),
        "field.jpg": CaptionErrors(invented_people=False, invented_object=True,
                                   missed_main_object=False),
        "kitchen.jpg": CaptionErrors(invented_people=True, invented_object=False,
                                     missed_main_object=True),
        "street.jpg": CaptionErrors(False, False, False),
        "beach.jpg": CaptionErrors(invented_people=False, invented_object=False,
                                   missed_main_object=True)}
    assert [image for image, e in errors.items() if e.wrong] == ["field.jpg", "kitchen.jpg",
                                                                 "beach.jpg"]
    measures = object_measures(PEOPLE_PREDICTIONS, PEOPLE_REFS)
    assert measures.main_object_named == pytest.approx(
        1 - sum(e.missed_main_object for e in errors.values()) / measures.photos_with_main_object)
