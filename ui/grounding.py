"""What the page says about grounding: the evidence behind each pinned word, in the CNN's own
numbers, and what the CNN is sure of at a coarser level. Pure text, no Streamlit.

A pinned word's number is its tag's confidence (captioner.grounding.Tag.confidence: the
geometric mean of the photo's and the best grid cell's probability of the word's ImageNet
labels), never the caption model's probability of the word, which for a word the vocabulary
gained late (its output bias set lower) can be near 0 even where the CNN is sure.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, NamedTuple, Sequence

from captioner.options import DecodeOptions
from captioner.grounding import SUPERCATEGORIES, Tag
from captioner.imagenet import Label, imagenet_names
from captioner.object_words import object_words

from ui.support import PIN, escape_markdown

# Kinds named without an article ("food", not "a food").
MASS_KINDS = frozenset({"food", "clothing", "furniture", "equipment", "kitchenware"})


def short_label(name: str) -> str:
    """An ImageNet description's first name: "ostrich, Struthio camelus" -> "ostrich"."""
    return name.split(",")[0].strip()


def percent(p: float) -> str:
    return f"{p:.0%}"


@lru_cache(maxsize=1)
def _class_index() -> dict[str, int]:
    """ImageNet description -> class index (the first, for the one description used twice)."""
    index: dict[str, int] = {}
    for i, name in enumerate(imagenet_names()):
        index.setdefault(name, i)
    return index


def label_word(name: str, classes: Mapping | None = None) -> str | None:
    """The caption word of an ImageNet label ("ostrich, Struthio camelus" -> "bird"), if any."""
    classes = object_words().classes if classes is None else classes
    entry = classes.get(_class_index().get(name, -1))
    return getattr(entry, "word", None)


def label_kind(name: str, classes: Mapping | None = None) -> str | None:
    """The coarse kind of an ImageNet label ("ostrich" -> "animal"): its entry's `kind` where
    the word table has one, taken up to the broadest kind above it (bird -> animal), else the
    COCO supercategory of its word's category, else that category, else its caption word;
    None for a class no caption word covers."""
    classes = object_words().classes if classes is None else classes
    entry = classes.get(_class_index().get(name, -1))
    if entry is None:
        return None
    kind = getattr(entry, "kind", None)
    if kind:
        broader = object_words().kinds
        while broader.get(kind):
            kind = broader[kind]
        return kind
    category = getattr(entry, "category", None)
    group = next((g for g, members in SUPERCATEGORIES.items() if category in members), None)
    return group or category or getattr(entry, "word", None)


def with_article(kind: str) -> str:
    if kind in MASS_KINDS:
        return kind
    return ("an " if kind[:1].lower() in "aeiou" else "a ") + kind


class KindShare(NamedTuple):
    kind: str  # e.g. "animal"
    probability: float  # the top-5 labels of that kind, summed
    labels: tuple[Label, ...]  # those labels, most probable first


def coarse_kinds(labels: Sequence[Label], classes: Mapping | None = None) -> list[KindShare]:
    """The top-5 labels summed by coarse kind, most probable kind first."""
    shares: dict[str, list[Label]] = {}
    for label in labels:
        kind = label_kind(label.name, classes)
        if kind is not None:
            shares.setdefault(kind, []).append(label)
    result = [KindShare(kind, sum(l.probability for l in members), tuple(members))
              for kind, members in shares.items()]
    return sorted(result, key=lambda share: -share.probability)


def is_spread(share: KindShare, classes: Mapping | None = None) -> bool:
    """Evidence spread over related things: labels of two or more caption words (or of none)
    share the kind, and none holds two thirds of its probability."""
    things = {label_word(l.name, classes) or l.name for l in share.labels}
    return len(things) > 1 and max(l.probability for l in share.labels) < share.probability * 2 / 3


def spread_line(labels: Sequence[Label], classes: Mapping | None = None) -> str | None:
    """A sentence when the CNN's evidence is spread over related labels (ostrich, llama, camel):
    what it is sure of at the coarser level, the top-5 probabilities summed by kind. None
    otherwise."""
    shares = [s for s in coarse_kinds(labels, classes) if is_spread(s, classes)]
    if not shares:
        return None
    best = shares[0]
    named = ", ".join(f"{escape_markdown(short_label(l.name))} {percent(l.probability)}"
                      for l in best.labels)
    kind = escape_markdown(with_article(best.kind))
    return (f"**At a coarser level**: the top 5 labels give {percent(best.probability)} to "
            f"{kind} ({named}) and no one of them more than {percent(best.labels[0].probability)}"
            f": the CNN is surer that this is {kind} than which one.")


def thresholds_sentence(options: DecodeOptions) -> str:
    """The rule as the decoding options in use apply it."""
    return (f"A word's confidence is the geometric mean of its ImageNet labels' probability "
            f"over the whole photo and in the best grid cell; it is pinned when that reaches "
            f"{percent(options.tag_threshold)} (at most {options.max_tags} a photo); at "
            f"{percent(options.veto_threshold)} it also bars its rivals' words (\"dog\" on a "
            "photo that is surely a cat).")


def tag_line(tag: Tag, caption_words: Sequence[str], word_probs: Sequence[float],
             tagged: Sequence[str | None], imagenet: Sequence[Label],
             others: Sequence[Tag]) -> str:
    """One pinned word: its label confidence, the labels that made it (with their photo
    probabilities when in the top 5), whether and how it was placed, and its rivals."""
    top = {label.name: label.probability for label in imagenet}
    made_of = ", ".join(escape_markdown(short_label(name))
                        + (f" {percent(top[name])}" if name in top else "")
                        for name in tag.labels)
    where = [i for i, t in enumerate(tagged) if t == tag.word]
    if where:
        i = where[0]
        placed = (f"placed as “{escape_markdown(caption_words[i])}”, a word the caption model "
                  f"gave {percent(word_probs[i])}")
    else:
        placed = "asked for, but not placed"
    rivals = [f"{escape_markdown(short_label(l.name))} {percent(l.probability)}"
              for l in imagenet if l.name not in tag.labels and label_word(l.name) != tag.word]
    rivals += [f"the tag **{escape_markdown(o.word)}** ({percent(o.confidence)})"
               for o in others if o.word != tag.word]
    rival_text = f" · rivals: {', '.join(rivals)}" if rivals else ""
    return (f"- :blue[{PIN}] **{escape_markdown(tag.word)}** · the CNN's confidence "
            f"**{percent(tag.confidence)}** from {made_of} ({placed}){rival_text}")


def grounding_markdown(tags: Sequence[Tag], caption_words: Sequence[str],
                       word_probs: Sequence[float], tagged: Sequence[str | None],
                       imagenet: Sequence[Label], options: DecodeOptions) -> str:
    """Which of the CNN's labels guided the caption, in the CNN's own numbers, and the rule
    (thresholds of the options in use) that made them pins."""
    rule = thresholds_sentence(options)
    if not tags:
        return (f"No label was sure enough to guide the caption: its words are the caption "
                f"model's own. {rule}")
    lines = [tag_line(tag, caption_words, word_probs, tagged, imagenet, tags) for tag in tags]
    return f"**Guided the caption** (pinned words): {rule}\n" + "\n".join(lines)


def pinned_summary(tags: Sequence[Tag], tagged: Sequence[str | None]) -> str:
    """One short line for compare mode: the pins and their label confidences."""
    if not tags:
        return "No label guided it."
    return "Pinned: " + ", ".join(
        f"**{escape_markdown(t.word)}** (CNN {percent(t.confidence)}"
        + ("" if t.word in tagged else ", not placed") + ")" for t in tags)
