"""Tokenization and the word <-> id vocabulary.

Tokenization uses nltk's regular-expression tokenizer, which needs no downloaded data
(nltk.word_tokenize needs the punkt models, which a fresh offline machine does not have).
It matches how Karpathy-format `tokens` are made: lowercase, punctuation dropped.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from nltk.tokenize import wordpunct_tokenize

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
# English function words, which a caption may use as often as it needs ("a man in a red shirt
# sits on a bench"); decoding discourages using any other word twice (captioner.decoding).
FUNCTION_WORDS = frozenset("""
    a an the this that these those some another other each both all one two three four
    in on of at to from by with into onto near over under through behind beside between
    across along around up down out off front next top while for as
    and or but is are was be being has have it its he she they them his her their
""".split())


def tokenize(text: str) -> list[str]:
    """Lowercase words of a caption, without punctuation: "A dog's ball." -> [a, dogs, ball]."""
    # Apostrophes and hyphens are removed inside words first ("dog's" -> "dogs",
    # "t-shirt" -> "tshirt"), as the Karpathy/Flickr8k tokens do.
    text = text.lower().replace("'", "").replace("-", "")
    return [tok for tok in wordpunct_tokenize(text) if any(ch.isalnum() for ch in tok)]


def detokenize(words: Sequence[str]) -> str:
    return " ".join(words)


class Vocabulary:
    """Maps words to ids. Ids 0..3 are the special tokens, in the order of SPECIALS."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary must not contain duplicate words")
        self.itos = words
        self.stoi = {w: i for i, w in enumerate(words)}

    pad_id, start_id, end_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], min_count: int = 5) -> "Vocabulary":
        """Words seen at least `min_count` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for caption in captions for w in caption)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def content_words(self) -> list[bool]:
        """For each id: True for a word that is neither special nor a function word."""
        return [i >= len(SPECIALS) and w not in FUNCTION_WORDS for i, w in enumerate(self.itos)]

    def encode(self, words: Sequence[str]) -> list[int]:
        """<start> w1 .. wn <end>, unknown words as <unk>."""
        return [self.start_id] + [self.stoi.get(w, self.unk_id) for w in words] + [self.end_id]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words up to the first <end>, without <start>/<pad>."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i in (self.start_id, self.pad_id):
                continue
            words.append(self.itos[i])
        return words


def plural(word: str) -> str:
    """The plural a caption writes: dog -> dogs, bus -> buses, puppy -> puppies."""
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"
