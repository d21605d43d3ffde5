"""Object measures of captions over COCO's 80 categories: does the caption name the photo's main
object, and does it name objects that are not there (CHAIR: Rohrbach, Hendricks, Burns, Darrell
and Saenko 2018, "Object Hallucination in Image Captioning").

Captions are matched against CHAIR's synonym list (captioner/data/coco_synonyms.txt, shipped in
captioner/data/imagenet_words.json): lower-cased words, multi-word names ("hot dog", "teddy
bear") before single words, plurals by simple rules, and CHAIR's own rules for "baby bird",
"passenger train", "toilet seat" and "bow tie".

People are also measured by a plain word list (PERSON_WORDS): "people invented" (a person word
in the caption, none in any of the photo's references), "anything invented" (people invented,
or an object CHAIR-s counts), and "people named where present" (the caption has a person word
when at least 3 of the references have one). `caption_errors` gives these per photo."""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple

from captioner.concepts import PERSON_WORDS  # noqa: F401 (the people measures' word list)
# word_mentions: caption words -> COCO categories by CHAIR's synonyms (shared with the library's
# caption confidence, hence in captioner/)
from captioner.object_words import object_words, word_mentions  # noqa: F401

MAIN_OBJECT_REFERENCES = 3  # a main object: a category at least this many references name
PEOPLE_PRESENT_REFERENCES = 3  # people are there: at least this many references have a person word


def _words(text: str) -> list[str]:
    """Lower-cased words of a caption: "A man's hat" -> [a, man, s, hat]."""
    return re.findall(r"[a-z]+", text.lower())


def object_mentions(text: str) -> list[str]:
    """The COCO category of each object the text names, in order, repeats kept."""
    return [category for _, category in word_mentions(_words(text))]


def caption_objects(text: str) -> set[str]:
    """The COCO categories a caption names: "Two dogs chase a hot dog" -> {"dog", "hot dog"}."""
    return set(object_mentions(text))


def names_people(text: str) -> bool:
    """Whether a caption has a person word (PERSON_WORDS): "She rides a horse" -> True."""
    return not PERSON_WORDS.isdisjoint(_words(text))


@dataclass(frozen=True)
class ObjectMeasures:
    main_object_named: float  # share of photos with a main object whose caption names one
    photos_with_main_object: int  # photos where >= 3 references name one non-person category
    chair_s: float  # share of captions naming a category absent from the photo's ground truth
    chair_i: float  # hallucinated mentions / mentions
    mentions: int  # object mentions in the captions (people's only if count_people)
    hallucinated_mentions: int
    captions: int
    count_people: bool  # whether person mentions count towards CHAIR
    with_instances: bool  # ground truth: references' objects, plus instance annotations if True
    hallucinated: Mapping[str, tuple[str, ...]]  # image -> categories named but absent
    people_invented: float  # share of captions with a person word where no reference has one
    anything_invented: float  # share of captions inventing people or an object (as CHAIR-s)
    people_named_where_present: float  # share of photos with people whose caption names some
    photos_with_people: int  # photos where >= 3 references have a person word

    def as_dict(self) -> dict:
        return {"main_object_named": self.main_object_named,
                "photos_with_main_object": self.photos_with_main_object,
                "chair_s": self.chair_s, "chair_i": self.chair_i, "mentions": self.mentions,
                "hallucinated_mentions": self.hallucinated_mentions, "captions": self.captions,
                "count_people": self.count_people, "with_instances": self.with_instances,
                "people_invented": self.people_invented,
                "anything_invented": self.anything_invented,
                "people_named_where_present": self.people_named_where_present,
                "photos_with_people": self.photos_with_people}


@dataclass(frozen=True)
class CaptionErrors:
    """What is wrong with one photo's caption, judged by its references (and annotations)."""

    invented_people: bool  # a person word, and none in any of the photo's references
    invented_object: bool  # a category absent from the photo's ground truth, as CHAIR-s counts
    missed_main_object: bool  # the photo has a main object and the caption names none
    wrong: bool = field(init=False)  # any of the three

    def __post_init__(self) -> None:
        object.__setattr__(self, "wrong", self.invented_people or self.invented_object
                           or self.missed_main_object)


def main_objects(references: Iterable[str], min_references: int = MAIN_OBJECT_REFERENCES) -> set[str]:
    """Non-person categories at least `min_references` of the reference captions name."""
    people = object_words().people
    counts = Counter(c for r in references for c in caption_objects(r) if c != people)
    return {c for c, n in counts.items() if n >= min_references}


class _Photo(NamedTuple):
    """One caption against its photo's references: what the measures count."""

    main: set[str]  # the photo's main objects
    names_main: bool  # the caption names one of them
    counted: list[str]  # the caption's object mentions that CHAIR counts
    absent: list[str]  # those not in the photo's ground truth
    names_people: bool  # the caption has a person word
    references_with_people: int  # references that have one


def _photos(predictions: Mapping[str, str], references: Mapping[str, list[str]],
            instances: Mapping[str, set[str]] | None, count_people: bool,
            min_references: int) -> dict[str, _Photo]:
    people = object_words().people
    photos = {}
    for image, caption in predictions.items():
        refs = references[image]
        main = main_objects(refs, min_references)
        said = object_mentions(caption)
        truth = set().union(*(caption_objects(r) for r in refs))
        if instances is not None:
            truth |= set(instances.get(image, ()))
        counted = [c for c in said if count_people or c != people]
        photos[image] = _Photo(main=main, names_main=bool(main & set(said)), counted=counted,
                               absent=[c for c in counted if c not in truth],
                               names_people=names_people(caption),
                               references_with_people=sum(map(names_people, refs)))
    return photos


def _errors(photo: _Photo) -> CaptionErrors:
    return CaptionErrors(
        invented_people=photo.names_people and not photo.references_with_people,
        invented_object=bool(photo.absent),
        missed_main_object=bool(photo.main) and not photo.names_main)


def caption_errors(predictions: Mapping[str, str], references: Mapping[str, list[str]],
                   instances: Mapping[str, set[str]] | None = None, count_people: bool = False,
                   min_references: int = MAIN_OBJECT_REFERENCES) -> dict[str, CaptionErrors]:
    """{image: CaptionErrors} of predictions {image: caption} against references {image:
    [captions]}, judged as `object_measures` judges them (same arguments): whether each caption
    invents people, invents an object, misses the main object, and so is wrong."""
    return {image: _errors(photo) for image, photo in
            _photos(predictions, references, instances, count_people, min_references).items()}


def object_measures(predictions: Mapping[str, str], references: Mapping[str, list[str]],
                    instances: Mapping[str, set[str]] | None = None, count_people: bool = False,
                    min_references: int = MAIN_OBJECT_REFERENCES) -> ObjectMeasures:
    """Main-object, CHAIR and people measures of predictions {image: caption} against
    references {image: [captions]} and optionally instance annotations {image: {categories}}
    (an image missing from `instances` has none). A photo's ground truth for CHAIR is what its
    references name, plus its annotated instances when given (Rohrbach et al. take the union of
    both); people are judged from the references alone."""
    photos = _photos(predictions, references, instances, count_people, min_references)
    errors = {image: _errors(photo) for image, photo in photos.items()}
    with_main = sum(bool(p.main) for p in photos.values())
    named = sum(p.names_main for p in photos.values())
    mentions = sum(len(p.counted) for p in photos.values())
    hallucinated_mentions = sum(len(p.absent) for p in photos.values())
    with_people = [p for p in photos.values()
                   if p.references_with_people >= PEOPLE_PRESENT_REFERENCES]
    captions = len(predictions)

    def share(count: int, of: int) -> float:
        return count / of if of else 0.0

    return ObjectMeasures(
        main_object_named=share(named, with_main),
        photos_with_main_object=with_main,
        chair_s=share(sum(e.invented_object for e in errors.values()), captions),
        chair_i=share(hallucinated_mentions, mentions),
        mentions=mentions, hallucinated_mentions=hallucinated_mentions, captions=captions,
        count_people=count_people, with_instances=instances is not None,
        hallucinated=MappingProxyType({image: tuple(dict.fromkeys(p.absent))
                                       for image, p in photos.items() if p.absent}),
        people_invented=share(sum(e.invented_people for e in errors.values()), captions),
        anything_invented=share(sum(e.invented_people or e.invented_object
                                    for e in errors.values()), captions),
        people_named_where_present=share(sum(p.names_people for p in with_people),
                                         len(with_people)),
        photos_with_people=len(with_people))


def load_instances(path: str | Path, key: str = "id") -> dict[int | str, set[str]]:
    """COCO instance annotations (instances_*.json) -> {image: its annotated categories}, the
    image named by its COCO `id` (key="id") or its `file_name` (key="file_name"). Photos with
    no annotated object map to an empty set."""
    if key not in ("id", "file_name"):
        raise ValueError(f"key must be 'id' or 'file_name', not {key!r}")
    data = json.loads(Path(path).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_id: dict[int, set[str]] = defaultdict(set)
    for a in data["annotations"]:
        by_id[a["image_id"]].add(names[a["category_id"]])
    return {image[key]: set(by_id.get(image["id"], ())) for image in data["images"]}
