"""The facade users call: Captioner.from_checkpoint(path).caption(images) -> [Caption]."""
from __future__ import annotations

import os
import time
import warnings
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .config import ModelConfig
from .confidence import VERDICTS, CaptionConfidence, ConfidenceModel, Evidence
from .decoder import Decoder
from .decoding import Decoding
from .grounding import Tag
from .language_model import LanguageModelFile, load_language_model
from .encoder import Encoder
from .images import ImageSource, load_image, source_name
from .imagenet import Label, top_labels
from .build import build_checkpoint_encoder, load_decoder
from .options import MAX_CAPTION_LENGTH, DecodeOptions, resolve_options
from .preprocessing import Preprocessing
from .search import Hypothesis
from .vocab import Vocabulary, tokenize

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The shipped default models, trained on Flickr8k (see the README's results table).
DEFAULT_CHECKPOINTS = {
    "soft": WEIGHTS_DIR / "soft_flickr8k.pt",
    "hard": WEIGHTS_DIR / "hard_flickr8k.pt",
}
# The caption language model that DecodeOptions.fusion_weight fuses with any captioner.
LANGUAGE_MODEL = WEIGHTS_DIR / "language_coco_flickr8k.pt"
DEFAULT_MODEL = "soft"
# Below this mean word probability an ungrounded caption is called a guess: the 10th percentile
# of the Flickr8k val captions (the photos the model knows); a quarter of the COCO dev photos'
# captions fall below it (python -m benchmarks.guess_threshold, docs/grounding.md).
GUESS_WORD_PROBABILITY = 0.40
# Photos captioned in one call by the CLI and the app's table: one search over them all, so
# each decoding step reads the weights once for every photo's beams. More per call would hold
# the model (the app's queue) longer and grow the call's memory with the photos.
PHOTOS_PER_CALL = 32
# The encoder runs a call's photos a few at a time: its activations for a handful of 224-px
# photos stay in the CPU's cache. On the 2-core AMD EPYC a photo cost 12-14 ms in batches of
# 2-8, against 20 ms in one batch of 32 and 16 ms one at a time (python -m benchmarks.latency
# prints it; results/latency_concepts_int8.txt); 2, 4 and 8 differ by less than the noise.
# The search still takes all the photos at once: there the weights, not the activations, are
# what a step reads.
ENCODER_BATCH = 4

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """The times of the call that captioned the photo: shared by all `photos` of it."""

    preprocess_ms: float
    encoder_ms: float
    decoder_ms: float  # beam search or greedy, attention maps included; shared by the batch
    photos: int = 1  # how many photos the call captioned together

    @property
    def per_photo_ms(self) -> float:
        """The call's time divided among its photos."""
        return (self.preprocess_ms + self.encoder_ms + self.decoder_ms) / self.photos


@dataclass
class Alternative:
    words: list[str]
    score: float
    word_probs: list[float] = field(default_factory=list)  # p of each word, as in Caption

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class Caption:
    words: list[str]
    score: float  # ranking score of the best hypothesis (log-probability, maybe length-normalised)
    log_prob: float
    alphas: np.ndarray  # (T, h, w): one attention map per word, each summing to 1
    alternatives: list[Alternative] = field(default_factory=list)  # n-best, best first
    # p(word | photo, the words before it) for each word: how sure the model was of it
    word_probs: list[float] = field(default_factory=list)
    # The encoder's own ImageNet top-5 for the photo (empty for encoders without that head)
    imagenet: list[Label] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the upright input photo
    timing: Timing | None = None
    # What the encoder's classifier was sure of and the search had to place (grounding)
    tags: list[Tag] = field(default_factory=list)
    # For each word, the tag that put it there (None: the language model's own choice)
    tagged: list[str | None] = field(default_factory=list)
    # How far to trust it, for a model file that carries a calibrated confidence model
    confidence: CaptionConfidence | None = None

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def is_guess(self) -> bool:
        """No tag guided it and the model was unsure of its words: the photo is probably unlike
        any it was trained on (GUESS_WORD_PROBABILITY, chosen on Flickr8k val). A model with a
        calibrated confidence calls it so instead (captioner.confidence)."""
        if self.confidence is not None:
            return self.confidence.verdict == VERDICTS[2]
        if self.tags or not self.word_probs:
            return False
        return sum(self.word_probs) / len(self.word_probs) < GUESS_WORD_PROBABILITY

    def to_dict(self) -> dict:
        return {
            "caption": self.text,
            "words": self.words,
            "word_probs": [round(p, 6) for p in self.word_probs],
            "score": self.score,
            "log_prob": self.log_prob,
            "attention": self.alphas.round(6).tolist(),
            "grid": list(self.alphas.shape[1:]),
            "alternatives": [{"caption": a.text, "score": a.score,
                              "word_probs": [round(p, 6) for p in a.word_probs]}
                             for a in self.alternatives],
            "imagenet_top5": [{"label": label.name, "probability": round(label.probability, 6)}
                              for label in self.imagenet],
            "tags": [{"word": t.word, "confidence": round(t.confidence, 6),
                      "imagenet_labels": list(t.labels)} for t in self.tags],
            "tagged_words": self.tagged,
            "is_guess": self.is_guess,
            "confidence": None if self.confidence is None else {
                "verdict": self.confidence.verdict,
                "p_wrong": round(self.confidence.p_wrong, 3),
                "reasons": list(self.confidence.reasons)},
            "image_size": list(self.image_size),
            "timing_ms": None if self.timing is None else vars(self.timing),
        }


@dataclass
class Explanation:
    """A caption someone typed, read by the model under teacher forcing: how likely it found
    each word given the photo and the words before, and where it looked for each."""

    words: list[str]  # the text as the tokenizer splits it (lower case, no punctuation)
    known: list[bool]  # False: a word the vocabulary lacks, read as <unk>
    word_probs: list[float]  # p(word | photo, words before) (p(<unk>) for an unknown word)
    end_prob: float  # p(<end>) after the last word: does the model think the caption is done?
    log_prob: float  # sum of the words' and <end>'s log-probabilities
    alphas: np.ndarray  # (T, h, w) attention map of each word

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_dict(self) -> dict:
        return {"caption": self.text, "words": self.words, "known": self.known,
                "word_probs": [round(p, 6) for p in self.word_probs],
                "end_prob": round(self.end_prob, 6), "log_prob": self.log_prob,
                "attention": self.alphas.round(6).tolist(), "grid": list(self.alphas.shape[1:])}


def default_checkpoint(kind: str = DEFAULT_MODEL) -> Path:
    if kind not in DEFAULT_CHECKPOINTS:
        raise ValueError(f"unknown default model {kind!r}; choose {', '.join(DEFAULT_CHECKPOINTS)}")
    return DEFAULT_CHECKPOINTS[kind]


def resolve_checkpoint(checkpoint: str | os.PathLike | None = None) -> Path:
    """The checkpoint file that a command's --checkpoint / --init names: a path, or a shipped
    model's name ("soft", "hard"); None is the default model. A file of a shipped model's name
    wins over that model (a folder does not). Neither a file nor a shipped name, or a shipped
    model that is not installed: a one-line CheckpointError."""
    name = DEFAULT_MODEL if checkpoint is None else str(checkpoint)
    path = Path(name)
    if name in DEFAULT_CHECKPOINTS and (checkpoint is None or path.is_dir()
                                        or not os.path.lexists(path)):
        shipped = DEFAULT_CHECKPOINTS[name]
        if not shipped.exists():
            raise CheckpointError(f"{shipped}: the shipped {name} model is not installed; "
                                  "pass a checkpoint path")
        return shipped
    if not os.path.lexists(path):
        raise CheckpointError(f"{name}: no such checkpoint file, nor a shipped model "
                              f"({', '.join(DEFAULT_CHECKPOINTS)})")
    return path


@dataclass(frozen=True)
class EncodedPhotos:
    """Photos after the encoder: what every decoder on that encoder starts from."""
    features: torch.Tensor  # (B, L, D)
    grid: tuple[int, int]
    sizes: list[tuple[int, int]]  # (width, height) of each upright photo
    imagenet: list[list[Label]]  # the encoder's ImageNet top-5 per photo
    preprocess_ms: float
    encoder_ms: float


class Captioner:
    """Encoder + decoder + vocabulary + preprocessing, for inference only.

    The model is put in eval mode once, here; captioning never changes its weights or
    settings (its first decode builds the decoding tables, captioner.fused, as a cache), so one
    instance can serve concurrent callers (for example every session of the app).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, vocab: Vocabulary,
                 preprocessing: Preprocessing, metadata: dict | None = None,
                 encoder_key: Hashable | None = None):
        self.encoder = encoder.eval()
        self.decoder = decoder.eval()
        self.vocab = vocab
        # the one decoding path, with the encoder's classifier for tags and the shipped
        # caption language model for fusion
        self.decoding = Decoding(self.decoder, vocab, self.encoder, shipped_language_model)
        # The file's calibrated confidence; one this version cannot use is left out, and why
        # is kept (and warned), rather than failing to load a model that captions fine.
        self.confidence: ConfidenceModel | None = None
        self.confidence_refused: str | None = None
        calibrated = (metadata or {}).get("confidence")
        if calibrated and decoder.concept_reader is not None:
            try:
                self.confidence = ConfidenceModel.from_dict(calibrated)
            except ValueError as error:
                self.confidence_refused = f"its calibrated confidence is not used: {error}"
                warnings.warn(self.confidence_refused, stacklevel=2)
        self.preprocessing = preprocessing
        self.metadata = dict(metadata or {})
        # Captioners with equal keys compute the same features for a photo (same encoder
        # weights and preprocessing), so one `encode` serves them all. None: share with none.
        self.encoder_key = encoder_key

    @property
    def config(self) -> ModelConfig:
        return self.decoder.config

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None,
                        encoder_weights: str | None = None) -> "Captioner":
        """Load a checkpoint file, or a shipped model by name ("soft", "hard"); no path means
        the shipped default model."""
        path = resolve_checkpoint(path)
        checkpoint = load_checkpoint(path)
        return cls.from_parts(checkpoint, encoder_weights, name=str(path))

    @classmethod
    def from_parts(cls, checkpoint: Checkpoint, encoder_weights: str | None = None,
                   name: str = "<checkpoint>") -> "Captioner":
        encoder = build_checkpoint_encoder(checkpoint, name, encoder_weights)
        decoder = load_decoder(checkpoint, name, encoder)
        # The packaged pretrained weights are the same for every checkpoint that keeps them;
        # fine-tuned (or user-supplied) weights belong to this file alone.
        pretrained = checkpoint.encoder is None and encoder_weights is None
        key = (checkpoint.config.encoder, repr(checkpoint.preprocessing),
               "pretrained" if pretrained else name)
        return cls(encoder, decoder, checkpoint.vocab, checkpoint.preprocessing,
                   checkpoint.metadata, key)

    def caption(self, images: ImageSource | Sequence[ImageSource],
                options: DecodeOptions | None = None, **changes) -> list[Caption]:
        """Caption one or more images (paths, bytes, file objects or PIL images), decoded by
        `options` (default: DecodeOptions()) with any fields given as keywords changed:
        caption(photo, beam_size=5)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        return self.caption_encoded(self.encode(images), resolve_options(options, changes))

    def encode(self, images: Sequence[ImageSource]) -> "EncodedPhotos":
        """The encoder's pass over the photos: reusable by every Captioner with the same
        `encoder_key` (the app's compare mode encodes a photo once per encoder)."""
        started = time.perf_counter()
        photos = [load_image(image, source_name(image)) for image in images]
        if not photos:
            raise ValueError("no photos to caption")
        with torch.inference_mode():
            pixels = self.preprocessing.batch(photos)
            prepared = time.perf_counter()
            parts = [self.encoder(chunk) for chunk in in_chunks(pixels, ENCODER_BATCH)]
            features = torch.cat([part.features for part in parts])
            logits = self.encoder.imagenet_logits(features)
        labels = top_labels(logits) if logits is not None else [[] for _ in photos]
        return EncodedPhotos(features, parts[0].grid, [p.size for p in photos], labels,
                             (prepared - started) * 1e3,
                             (time.perf_counter() - prepared) * 1e3)

    def caption_encoded(self, encoded: "EncodedPhotos", options: DecodeOptions | None = None,
                        **changes) -> list[Caption]:
        started = time.perf_counter()
        captions = self.caption_features(encoded.features, encoded.grid,
                                         resolve_options(options, changes))
        timing = Timing(encoded.preprocess_ms, encoded.encoder_ms,
                        (time.perf_counter() - started) * 1e3, len(captions))
        for caption, size, labels in zip(captions, encoded.sizes, encoded.imagenet):
            caption.image_size = size
            caption.timing = timing
            caption.imagenet = labels
        return captions

    def caption_features(self, features: torch.Tensor, grid: tuple[int, int],
                         options: DecodeOptions | None = None, **changes) -> list[Caption]:
        """Caption precomputed annotation grids (B, L, D), e.g. from a feature cache."""
        options = resolve_options(options, changes)
        decoded = self.decoding.run(features, options)
        captions = [self._to_caption(hyps, grid, photo_tags)
                    for hyps, photo_tags in zip(decoded.hypotheses, decoded.tags)]
        if self.confidence is not None:
            self._judge(captions, features, decoded.concepts)
        return captions

    def _judge(self, captions: list["Caption"], features: torch.Tensor,
               concepts: torch.Tensor) -> None:
        """Each caption's calibrated confidence, from its words and the photo's concepts."""
        config = self.config
        with torch.inference_mode():
            probs = concepts.cpu().tolist()
            novelty = self.confidence.novelty(features).tolist()
        for caption, p, n in zip(captions, probs, novelty):
            caption.confidence = self.confidence.judge(Evidence.of(
                caption.words, caption.word_probs, config.concepts, config.imagenet_concepts, p, n))

    def explain(self, encoded: "EncodedPhotos", text: str, options: DecodeOptions | None = None,
                photo: int = 0) -> Explanation:
        """Read a typed caption of photo `photo` of `encoded` word by word, as decoding would
        have scored it (teacher forcing through step()). Raises ValueError for text with no
        words or more than MAX_CAPTION_LENGTH words."""
        options = resolve_options(options, {})
        words = tokenize(text if isinstance(text, str) else "")
        if not words:
            raise ValueError("type a caption: the text has no words")
        if len(words) > MAX_CAPTION_LENGTH:
            raise ValueError(f"a caption may have at most {MAX_CAPTION_LENGTH} words; this one "
                             f"has {len(words)}")
        ids = self.vocab.encode(words)  # <start> w1 .. wn <end>
        # The decoding steps themselves, each fed the typed word: the same probabilities
        # (language model fusion and hard-attention mode included) the search saw.
        read = self.decoding.read(encoded.features[photo:photo + 1], ids, options)
        chosen = read.word_log_probs[0].float().cpu()
        alphas = read.alphas[0, :len(words)].float().cpu().numpy().reshape(len(words),
                                                                             *encoded.grid)
        probabilities = chosen.exp().tolist()
        return Explanation(words, [w in self.vocab.stoi for w in words], probabilities[:-1],
                           probabilities[-1], float(chosen.sum()), alphas)

    def _to_caption(self, hypotheses: list[Hypothesis], grid: tuple[int, int],
                    tags: list[Tag]) -> Caption:
        best = hypotheses[0]
        alphas = best.alphas.numpy().reshape(len(best.tokens), *grid)
        words = self.vocab.decode(best.tokens)
        return Caption(
            words=words, score=best.score, log_prob=best.log_prob,
            alphas=alphas, word_probs=_probabilities(best),
            alternatives=[Alternative(self.vocab.decode(h.tokens), h.score, _probabilities(h))
                          for h in hypotheses],
            tags=tags, tagged=self.decoding.tagger.placed(words, tags))


def in_chunks(items: Sequence[T], size: int = PHOTOS_PER_CALL) -> Iterator[Sequence[T]]:
    """items in consecutive runs of at most `size`, in order: one captioning call each."""
    if size < 1:
        raise ValueError("size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start:start + size]


@lru_cache(maxsize=1)
def shipped_language_model() -> LanguageModelFile:
    if not LANGUAGE_MODEL.exists():
        raise CheckpointError(f"{LANGUAGE_MODEL}: the caption language model is not installed; "
                              "decode with fusion_weight=0")
    return load_language_model(LANGUAGE_MODEL)


def _probabilities(hypothesis: Hypothesis) -> list[float]:
    return hypothesis.word_log_probs.exp().tolist()
