"""Object measures of captions over COCO's 80 categories: does the caption name the photo's main
object, and does it name objects that are not there (CHAIR: Rohrbach, Hendricks, Burns, Darrell
and Saenko 2018, "Object Hallucination in Image Captioning").

Captions are matched against CHAIR's synonym list (captioner/data/coco_synonyms.txt, shipped in
captioner/data/imagenet_words.json): lower-cased words, multi-word names ("hot dog", "teddy
bear") before single words, plurals by simple rules, and CHAIR's own rules for "baby bird",
"passenger train", "toilet seat" and "bow tie"."""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from captioner.object_words import object_words

MAIN_OBJECT_REFERENCES = 3  # a main object: a category at least this many references name

# CHAIR's special cases: qualifiers that would otherwise count as a person ("baby", "adult",
# "passenger") and a seat that is not a chair.
_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
_COMPOUNDS = {**{f"{q} {a}": a for q in ("baby", "adult") for a in _ANIMALS},
              "passenger jet": "jet", "passenger train": "train", "toilet seat": "toilet",
              "bow tie": "tie"}
_NOT_PEOPLE = {f"{q} {w}": None for q in ("baby", "adult") for w in ("animal", "cub")}
_IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child",
              "mice": "mouse", "geese": "goose", "oxen": "ox", "knives": "knife",
              "policemen": "policeman", "gentlemen": "gentleman", "servicemen": "serviceman"}


class _Lexicon:
    """Caption words -> COCO category, built once from the shipped synonym groups."""

    def __init__(self, categories: Mapping[str, tuple[str, ...]]):
        phrases: dict[tuple[str, ...], str | None] = {}
        for category, words in categories.items():
            for word in words:
                phrases[tuple(word.split())] = category
        for phrase, word in _COMPOUNDS.items():  # word -> its category, e.g. "baby bird" -> bird
            phrases[tuple(phrase.split())] = phrases[(word,)]
        for phrase in _NOT_PEOPLE:
            phrases[tuple(phrase.split())] = None
        self.phrases = MappingProxyType(phrases)
        self.longest = max(len(p) for p in phrases)
        self.known = frozenset(w for p in phrases for w in p)

    def singular(self, word: str) -> str:
        """A known singular for a plural ("dogs" -> "dog", "buses" -> "bus", "puppies" ->
        "puppy", "knives" -> "knife"), else the word itself."""
        if word in self.known:
            return word
        if word in _IRREGULAR:
            return _IRREGULAR[word]
        candidates = []
        if word.endswith("ies"):
            candidates.append(word[:-3] + "y")
        if word.endswith("ves"):
            candidates += [word[:-3] + "f", word[:-3] + "fe"]
        if word.endswith("es"):
            candidates.append(word[:-2])
        if word.endswith("s") and not word.endswith("ss"):
            candidates.append(word[:-1])
        return next((c for c in candidates if c in self.known), word)

    def mentions(self, words: Sequence[str]) -> list[tuple[int, str]]:
        """(position of the name's last word, category) of each object the words name."""
        words = [self.singular(w) for w in words]
        found, i = [], 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):  # longest name first
                phrase = tuple(words[i:i + n])
                if phrase in self.phrases:
                    if self.phrases[phrase] is not None:
                        found.append((phrase, i + n - 1, self.phrases[phrase]))
                    i += n
                    break
            else:
                i += 1
        if any(p == ("toilet",) for p, _, _ in found):  # CHAIR: "the seat of the toilet" is no chair
            found = [(p, at, c) for p, at, c in found if p != ("seat",)]
        return [(at, category) for _, at, category in found]


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    return _Lexicon(object_words().categories)


def object_mentions(text: str) -> list[str]:
    """The COCO category of each object the text names, in order, repeats kept."""
    return [category for _, category in word_mentions(re.findall(r"[a-z]+", text.lower()))]


def word_mentions(words: Sequence[str]) -> list[tuple[int, str]]:
    """For caption words, (position of the name's last word, COCO category) of each object
    they name: "a hot dog and two dogs" -> [(2, "hot dog"), (5, "dog")]."""
    return _lexicon().mentions(words)


def caption_objects(text: str) -> set[str]:
    """The COCO categories a caption names: "Two dogs chase a hot dog" -> {"dog", "hot dog"}."""
    return set(object_mentions(text))


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

    def as_dict(self) -> dict:
        return {"main_object_named": self.main_object_named,
                "photos_with_main_object": self.photos_with_main_object,
                "chair_s": self.chair_s, "chair_i": self.chair_i, "mentions": self.mentions,
                "hallucinated_mentions": self.hallucinated_mentions, "captions": self.captions,
                "count_people": self.count_people, "with_instances": self.with_instances}


def main_objects(references: Iterable[str], min_references: int = MAIN_OBJECT_REFERENCES) -> set[str]:
    """Non-person categories at least `min_references` of the reference captions name."""
    people = object_words().people
    counts = Counter(c for r in references for c in caption_objects(r) if c != people)
    return {c for c, n in counts.items() if n >= min_references}


def object_measures(predictions: Mapping[str, str], references: Mapping[str, list[str]],
                    instances: Mapping[str, set[str]] | None = None, count_people: bool = False,
                    min_references: int = MAIN_OBJECT_REFERENCES) -> ObjectMeasures:
    """Main-object and CHAIR measures of predictions {image: caption} against references
    {image: [captions]} and optionally instance annotations {image: {categories}} (an image
    missing from `instances` has none). A photo's ground truth is what its references name,
    plus its annotated instances when given (Rohrbach et al. take the union of both)."""
    people = object_words().people
    named = with_main = mentions = hallucinated_mentions = hallucinated_captions = 0
    hallucinated: dict[str, tuple[str, ...]] = {}
    for image, caption in predictions.items():
        refs = references[image]
        main = main_objects(refs, min_references)
        said = object_mentions(caption)
        if main:
            with_main += 1
            named += bool(main & set(said))
        truth = set().union(*(caption_objects(r) for r in refs))
        if instances is not None:
            truth |= set(instances.get(image, ()))
        counted = [c for c in said if count_people or c != people]
        absent = [c for c in counted if c not in truth]
        mentions += len(counted)
        hallucinated_mentions += len(absent)
        if absent:
            hallucinated_captions += 1
            hallucinated[image] = tuple(dict.fromkeys(absent))
    captions = len(predictions)
    return ObjectMeasures(
        main_object_named=named / with_main if with_main else 0.0,
        photos_with_main_object=with_main,
        chair_s=hallucinated_captions / captions if captions else 0.0,
        chair_i=hallucinated_mentions / mentions if mentions else 0.0,
        mentions=mentions, hallucinated_mentions=hallucinated_mentions, captions=captions,
        count_people=count_people, with_instances=instances is not None,
        hallucinated=MappingProxyType(hallucinated))


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
