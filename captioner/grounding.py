"""Grounding: what the encoder's own ImageNet classifier sees, as caption words the search must
place (tags) and words it must not use (vetoes).

The classifier is linear after the average pool, so it also scores each grid cell (a class
activation map, Zhou et al. 2016). A caption word's probability sums the classes that map to it
(captioner/data/imagenet_words.json: "tabby", "Egyptian cat" -> "cat"); a tag's confidence is
the geometric mean of the photo's probability and the best cell's: the photo as a whole is
precise but misses small or off-centre objects, the best cell finds them but also fires on
texture, and the product asks both to agree. Thresholds are chosen on COCO dev photos and the
Flickr8k val split (docs/grounding.md).
"""
from __future__ import annotations

from typing import Collection, NamedTuple, Sequence

import torch

from .object_words import object_words
from .vocab import Vocabulary, plural

# COCO's supercategories (from its instance annotations' category list): a sure tag vetoes the
# words of the other categories in its group ("dog" on a photo that is surely a cat), not
# every other object (a cat photo may well show a bed).
SUPERCATEGORIES = {
    "vehicle": ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"),
    "animal": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
               "giraffe"),
    "food": ("banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
             "donut", "cake"),
    "electronic": ("tv", "laptop", "mouse", "remote", "keyboard", "cell phone"),
    "appliance": ("microwave", "oven", "toaster", "sink", "refrigerator"),
}


# Words never placed as tags: on COCO dev photos and Flickr8k val, fewer than a third of their
# tags were right (the classifier's "ski" fires on snow, "fish" on water, "train" on
# platforms, "valley" on any landscape). python -m benchmarks.tag_precision
# (results/tag_precision.json).
UNRELIABLE_TAGS = frozenset({
    "bag", "bench", "bikini", "binoculars", "blanket", "book", "broom", "building", "camel",
    "cap", "cape", "cart", "coat", "crane", "curtain", "door", "dress", "fish", "flag", "geyser",
    "gown", "gun", "hat", "helmet", "jeans", "lake", "mask", "paddle", "pajamas", "parachute",
    "phone", "pole", "racket", "railing", "restaurant", "robe", "roof", "shoe", "shovel", "skirt",
    "skis", "sled", "snowmobile", "store", "suit", "sunglasses", "swimsuit", "tent", "tie",
    "train", "truck", "trunks", "tub", "valley", "vest"})


class Tag(NamedTuple):
    word: str  # the caption word the search must place, e.g. "cat"
    confidence: float  # sqrt(p(word | photo) * p(word | best cell))
    labels: tuple[str, ...]  # the ImageNet labels behind it, most probable first
    category: str | None  # its COCO category, if any


class Grounding(NamedTuple):
    """What constrained beam search needs for a batch of B photos."""

    word_bits: torch.Tensor  # (B, V) int64: bit c set where a word satisfies tag c of its photo
    counts: torch.Tensor  # (B,) number of tags per photo
    vetoed: torch.Tensor  # (B, V) bool: words no caption of the photo may use

    @classmethod
    def vetoes_only(cls, vetoed: torch.Tensor) -> "Grounding":
        """No tags, only words barred per photo ((B, V) bool)."""
        batch, vocab = vetoed.shape
        return cls(torch.zeros(batch, vocab, dtype=torch.long, device=vetoed.device),
                   torch.zeros(batch, dtype=torch.long, device=vetoed.device), vetoed)

    @property
    def constrained(self) -> bool:
        return bool(self.counts.any()) or bool(self.vetoed.any())


class Evidence(NamedTuple):
    """What the classifier says of the tagger's W words, for B photos."""

    photo: torch.Tensor  # (B, 1000) class probabilities of the whole photo
    per_photo: torch.Tensor  # (B, W) p(word | photo): its classes' probabilities summed
    per_cell: torch.Tensor  # (B, W) the same for the grid cell that gives the word the most

    @property
    def confidence(self) -> torch.Tensor:
        return (self.per_photo * self.per_cell).sqrt()


class Tagger:
    """ImageNet logits -> caption-word tags and vetoes, for one vocabulary."""

    def __init__(self, vocab: Vocabulary):
        table = object_words()
        # People are what Flickr8k captions already talk about, in many words ("a man", "a
        # girl"); a "person" tag would only make them vaguer.
        words = sorted({c.word for c in table.classes.values()
                        if c.word in vocab.stoi and c.category != table.people})
        self.words = words
        index = {w: i for i, w in enumerate(words)}
        self.class_words = torch.zeros(1000, len(words))  # (1000, W): class -> its word
        self.labels: list[list[int]] = [[] for _ in words]
        for cls, entry in table.classes.items():
            if entry.word in index:
                self.class_words[cls, index[entry.word]] = 1.0
                self.labels[index[entry.word]].append(cls)
        self.category = {c.word: c.category for c in table.classes.values()}
        self.vocab_size = len(vocab)
        self.vocab_ids = vocab.stoi
        # Every form a tag may take in a caption: "dog" is also satisfied by "dogs".
        self.forms = {w: _ids(vocab, _forms(w)) for w in words}
        self.vetoes = {w: _ids(vocab, _rivals(w, self.category.get(w), table.categories))
                       for w in words}

    def evidence(self, photo_logits: torch.Tensor, cell_logits: torch.Tensor) -> Evidence:
        """photo_logits (B, 1000), cell_logits (B, L, 1000) -> what the classifier says of
        each of the tagger's words."""
        photo = photo_logits.float().softmax(-1)  # (B, 1000)
        per_cell = (cell_logits.float().softmax(-1) @ self.class_words).amax(dim=1)  # (B, W)
        return Evidence(photo, photo @ self.class_words, per_cell)

    def tags(self, evidence: Evidence, threshold: float, max_tags: int, names: Sequence[str],
             unreliable: Collection[str] = UNRELIABLE_TAGS) -> list[list[Tag]]:
        """Each photo's tags, most confident first: words whose confidence reaches threshold,
        at most max_tags, none of the `unreliable` words."""
        result = []
        for row, probabilities in zip(evidence.confidence.tolist(), evidence.photo.tolist()):
            ranked = sorted(((c, w) for w, c in zip(self.words, row)
                             if c >= threshold and w not in unreliable), reverse=True)[:max_tags]
            result.append([Tag(w, c, self._labels(w, probabilities, names),
                               self.category.get(w)) for c, w in ranked])
        return result

    def grounding(self, tags: list[list[Tag]], veto_threshold: float,
                  evidence: Evidence | None = None, evidence_floor: float = 0.0,
                  device: torch.device | str | None = None) -> Grounding:
        """The search's view of the tags: which words satisfy which tag, the vetoes of tags at
        least veto_threshold sure, and (evidence_floor > 0) the words naming an object whose
        confidence is below it: the classifier cannot see it."""
        batch = len(tags)
        word_bits = torch.zeros(batch, self.vocab_size, dtype=torch.long)
        vetoed = torch.zeros(batch, self.vocab_size, dtype=torch.bool)
        if evidence is not None and evidence_floor > 0:
            for b, row in enumerate(evidence.confidence.tolist()):
                for word, p in zip(self.words, row):
                    if p < evidence_floor and self.category.get(word):
                        vetoed[b, self.forms[word]] = True
        for b, photo_tags in enumerate(tags):
            for c, tag in enumerate(photo_tags):
                word_bits[b, self.forms[tag.word]] |= 1 << c
                if tag.confidence >= veto_threshold:
                    vetoed[b, self.vetoes[tag.word]] = True
            vetoed[b] &= word_bits[b] == 0  # never veto a word another tag asks for
        counts = torch.tensor([len(t) for t in tags], dtype=torch.long)
        return Grounding(word_bits.to(device), counts.to(device), vetoed.to(device))

    def forms_of(self, word: str) -> list[str]:
        return _forms(word)

    def placed(self, words: Sequence[str], tags: Sequence[Tag]) -> list[str | None]:
        """For each caption word, the tag it satisfies (the first use of each), else None."""
        placed: list[str | None] = []
        done = set()
        for word in words:
            tag = next((t.word for t in tags if t.word not in done
                        and self.vocab_ids.get(word) in self.forms[t.word]), None)
            placed.append(tag)
            if tag is not None:
                done.add(tag)
        return placed

    def _labels(self, word: str, probabilities: list[float], names: Sequence[str]
                ) -> tuple[str, ...]:
        classes = sorted(self.labels[self.words.index(word)], key=lambda i: -probabilities[i])
        return tuple(names[i] for i in classes[:3] if probabilities[i] >= 0.01) or (
            names[classes[0]],)


def _forms(word: str) -> list[str]:
    return [word, plural(word)]


def _rivals(word: str, category: str | None, categories) -> list[str]:
    """The words of the other categories in the tag's supercategory."""
    group = next((g for g in SUPERCATEGORIES.values() if category in g), ())
    rivals = []
    for other in group:
        if other != category:
            for name in categories.get(other, ()):
                rivals += _forms(name)
    return [w for w in rivals if w not in _forms(word)]


def _ids(vocab: Vocabulary, words: Sequence[str]) -> list[int]:
    return sorted({vocab.stoi[w] for w in words if w in vocab.stoi})
