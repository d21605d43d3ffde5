"""Object measures over tiny hand-made captions (training/objects.py)."""
from __future__ import annotations

import json

import pytest

from training.objects import caption_objects, load_instances, object_measures, object_mentions


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
