"""How to decode: DecodeOptions, the one set of options (and defaults) the app, the CLI, the
Python API, training's validation and evaluate share; captioner.decoding.Decoding honours all
of them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

MAX_CAPTION_LENGTH = 50  # the longest caption any caller may ask for
MAX_BEAM_SIZE = 20
HARD_MODES = ("expectation", "argmax", "sample")
# Constrained search keeps a beam per subset of tags used: 2**max_tags beams of beam_size.
MAX_TAGS = 3


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: the one set of defaults the app, the CLI, the Python API, training's
    validation and evaluate share. Passed whole; a new knob is one field here (the CLI and
    evaluate flags are generated from the fields, their help from `metadata["help"]`)."""

    beam_size: int = field(default=3, metadata={"help": "beam size (1 = greedy)",
                                                 "aliases": ["--beam"]})
    n_best: int = field(default=1, metadata={"help": "hypotheses kept per photo, best first"})
    max_length: int = field(default=20, metadata={"help": "maximum words per caption"})
    # Beam search ranks finished captions by log p / (words + 1) ** length_penalty (0: by log p
    # alone, which favours short captions). 1.0 was chosen on the Flickr8k val split for the
    # default model (docs/results.md, python -m benchmarks.length_penalty).
    length_penalty: float = field(default=1.0, metadata={
        "help": "rank hypotheses by log p / (words + 1) ** P"})
    # No caption holds the same repeat_ngram words twice ("a boy in a blue shirt and blue
    # shirt"): a word that would complete an n-gram the caption already holds is not a
    # candidate. Pairs (2), not trigrams (3): chosen on val for both shipped models, where it
    # raised BLEU-4, METEOR and CIDEr (docs/results.md, python -m benchmarks.length_penalty
    # --repeat-ngrams 3,2); human references repeat a pair of words in 4% of Flickr8k's
    # training captions.
    block_repeats: bool = field(default=True, metadata={
        "help": "never repeat a pair of words within a caption; discourage saying a content "
                "word twice"})
    repeat_ngram: int = field(default=2, metadata={
        "help": "with --block-repeats: the n-gram size never repeated (0: none)"})
    # ... and each earlier use of a content word (not a function word such as "a", "in"; see
    # captioner.vocab.FUNCTION_WORDS) costs a candidate this much log-probability: "a man in a
    # red shirt and a black shirt" repeats no pair but still says "shirt" twice. Chosen on
    # val: scores within noise, captions using a content word twice 130 -> 11 of 1,000.
    # The content words are the vocabulary's (Vocabulary.content_words(), which
    # captioner.decoding.Decoding passes to the search).
    repeat_penalty: float = field(default=2.0, metadata={
        "help": "with --block-repeats: log-probability cost of each earlier use of a content "
                "word"})
    # How a hard-attention model attends while decoding: "expectation" feeds sum_i alpha_i a_i,
    # as the paper's own code scored its hard model (kelvinxu/arctic-captions, sampling=False);
    # "argmax" one region a word; "sample" draws each word's region from alpha (what REINFORCE
    # trains; captions differ from run to run unless `seed` is given). None (the default): the
    # mode the model file carries (ModelConfig.hard_inference, set by training.export
    # --hard-inference; docs/models.md). Asking it of a model without hard attention is an
    # error (captioner.decoding.Decoding), not ignored.
    hard_mode: str | None = field(default=None, metadata={
        "help": "hard attention only: expectation | argmax | sample (default: the model "
                "file's own)",
        "choices": HARD_MODES})
    # Hard attention's draws in "sample" mode come from torch's generator seeded with this, so
    # a sampled caption (and its explanation) can be had again; None: fresh draws each call.
    seed: int | None = field(default=None, metadata={
        "help": "with --hard-mode sample: the seed of the regions drawn (default: fresh draws)"})
    # Attention scores divided by this before the softmax while decoding: below 1, each word's
    # map is sharper and its context leans on fewer cells. None: the model's own
    # (ModelConfig.attention_temperature, chosen on val and COCO dev: docs/attention.md).
    attention_temperature: float | None = field(default=None, metadata={
        "help": "divide attention scores by this while decoding; below 1 sharpens the maps "
                "(None: the model's own)"})

    # Grounding (captioner.grounding, captioner.search): the encoder's own ImageNet
    # classifier tags the photo with caption words ("cat" from "tabby", "Egyptian cat"); the
    # caption must use each tag whose confidence reaches tag_threshold (at most max_tags of
    # them), and a tag at least veto_threshold sure bars the words of its rivals ("dog" on a
    # surely-cat photo). Chosen on COCO dev photos and Flickr8k val (docs/grounding.md).
    grounding: bool = field(default=True, metadata={
        "help": "make the caption name what the encoder's ImageNet classifier is sure of"})
    tag_threshold: float = field(default=0.3, metadata={
        "help": "with --grounding: the confidence a tag needs to be placed"})
    max_tags: int = field(default=2, metadata={
        "help": "with --grounding: at most this many tags per photo"})
    veto_threshold: float = field(default=0.8, metadata={
        "help": "with --grounding: the confidence at which a tag bars its rivals' words"})
    # ... and a word naming an object (dog, bed, pizza) is not a candidate when its tag
    # confidence is below evidence_floor: what the classifier cannot see is not said. The
    # Flickr8k model says "dog" of many photos without one (0: off).
    evidence_floor: float = field(default=0.1, metadata={
        "help": "with --grounding: the least tag confidence an object word needs"})
    # A model that reads concepts has a person detector (captioner.concepts): no word that
    # names a person (man, girl, people, he, ...) where its probability is below person_floor
    # (0: off). Trained on captions, checked on COCO dev photos it never saw
    # (benchmarks.concept_detectors); independent of --grounding. 0.3 chosen on COCO dev's
    # even-id half (docs/concepts.md), a model without a person detector ignores it.
    person_floor: float = field(default=0.3, metadata={
        "help": "bar person words where the model's person detector is below this (0: off)"})

    # Shallow fusion (captioner.language_model): this weight times a language model's log p,
    # learnt from COCO and Flickr8k caption text, is added to the captioner's at every step, so
    # the words a tag places sit the way people write about such things (0: the captioner
    # alone). Chosen on val (docs/grounding.md).
    fusion_weight: float = field(default=0.15, metadata={
        "help": "weight of the caption language model's log-probabilities (0: none)"})

    def __post_init__(self) -> None:
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"beam_size must be between 1 and {MAX_BEAM_SIZE}")
        if not 1 <= self.n_best <= self.beam_size:
            raise ValueError(f"n_best must be between 1 and the beam size ({self.beam_size})")
        if not 1 <= self.max_length <= MAX_CAPTION_LENGTH:
            raise ValueError(f"max_length must be between 1 and {MAX_CAPTION_LENGTH}")
        if self.length_penalty < 0:
            raise ValueError("length_penalty must be at least 0")
        if self.repeat_ngram < 0:
            raise ValueError("repeat_ngram must be at least 0 (0: no n-gram is blocked)")
        if self.repeat_penalty < 0:
            raise ValueError("repeat_penalty must be at least 0")
        if not 0.0 <= self.tag_threshold <= 1.0:
            raise ValueError("tag_threshold must be between 0 and 1")
        if not 0 <= self.max_tags <= MAX_TAGS:
            raise ValueError(f"max_tags must be between 0 and {MAX_TAGS}")
        if not 0.0 <= self.veto_threshold <= 1.0:
            raise ValueError("veto_threshold must be between 0 and 1")
        if not 0.0 <= self.fusion_weight <= 2.0:
            raise ValueError("fusion_weight must be between 0 and 2")
        if not 0.0 <= self.person_floor <= 1.0:
            raise ValueError("person_floor must be between 0 and 1")
        if not 0.0 <= self.evidence_floor <= 1.0:
            raise ValueError("evidence_floor must be between 0 and 1")
        if self.attention_temperature is not None and not 0.0 < self.attention_temperature <= 10.0:
            raise ValueError("attention_temperature must be above 0 and at most 10")
        if self.hard_mode is not None and self.hard_mode not in HARD_MODES:
            raise ValueError(f"hard_mode must be one of {', '.join(HARD_MODES)}; "
                             f"got {self.hard_mode!r}")

    def replace(self, **changes) -> "DecodeOptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_OPTIONS = DecodeOptions()
# The decoder on its own: no tags, vetoes or person floor (they read the encoder's classifier
# and the photo's concepts) and no language model. What training's validation scores, so that
# a run is chosen on what it learnt, and the "decoder alone" rows of the docs.
MODEL_ALONE = DecodeOptions(grounding=False, person_floor=0.0, fusion_weight=0.0)


def resolve_options(options: DecodeOptions | None, changes: dict) -> DecodeOptions:
    """`options` (default DEFAULT_OPTIONS) with the fields named in `changes` replaced: the
    keyword shorthand of decode(..., beam_size=5), as transformers' generate(**kwargs)."""
    options = DEFAULT_OPTIONS if options is None else options
    return options.replace(**changes) if changes else options
