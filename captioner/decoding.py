"""The one entry point of decoding: Decoding(decoder, vocab, encoder).run(features, options)
honours every DecodeOptions field. It reads what the options need from the photos (the
concepts, once; the encoder's ImageNet tags and vetoes; the person floor), fuses the caption
language model when asked, gives sampled hard attention a seeded generator of its own, and
runs the one search
(captioner.search). The Captioner, training.evaluate and training's validation all decode
through it, so a field is honoured everywhere or nowhere."""
from __future__ import annotations

import threading
from functools import cached_property
from typing import Callable, NamedTuple

import torch

from .attention import attention_entry
from .concepts import PERSON_WORDS
from .decoder import Decoder
from .encoder import Encoder
from .grounding import Grounding, Tag, Tagger
from .imagenet import imagenet_names
from .language_model import FusedDecoder, LanguageModelFile
from .options import DecodeOptions, resolve_options
from .search import Hypothesis, Walk, content_word_mask, search, walk
from .vocab import Vocabulary

class Decoded(NamedTuple):
    """What one decoding call gives for B photos."""

    hypotheses: list[list[Hypothesis]]  # each photo's n_best, best first
    tags: list[list[Tag]]  # what the encoder's classifier was sure of, per photo
    concepts: torch.Tensor | None  # (B, K) the photos' concept probabilities (None: no reader)


class Decoding:
    """A decoder with what its options may ask for: the vocabulary (repeats, tags, person
    words), the encoder whose ImageNet head tags the photos (None: a model decoded on its
    own, as validation does, which then cannot ground) and the caption language model to
    fuse (a loader, called at the first fused call; None: fusion is refused).

    Read-only after construction apart from caches, so one instance serves concurrent callers.
    """

    def __init__(self, decoder: Decoder, vocab: Vocabulary, encoder: Encoder | None = None,
                 language_model: Callable[[], LanguageModelFile] | None = None):
        self.decoder, self.vocab, self.encoder = decoder, vocab, encoder
        self.content_words = content_word_mask(vocab)  # for DecodeOptions.repeat_penalty
        self.language_model = language_model
        # The concept reader's ImageNet words read the encoder's own head: one pass of it over
        # the cells serves the reader and the tagger (a 49 x 1000 product a photo).
        reader = decoder.concept_reader
        head = None if encoder is None else encoder.imagenet_head_weights()
        self.shares_head = bool(reader is not None and reader.imagenet and head is not None
                                and torch.equal(reader.head_weight, head[0].to(reader.head_weight))
                                and torch.equal(reader.head_bias, head[1].to(reader.head_bias)))
        self._fused: FusedDecoder | None = None  # built once; other weights share it
        self._fusion_lock = threading.Lock()

    def run(self, features: torch.Tensor, options: DecodeOptions | None = None, **changes
            ) -> Decoded:
        """Caption annotation grids (B, L, D): each photo's hypotheses, tags and concepts."""
        options = resolve_options(options, changes)
        self.check(options)
        with torch.inference_mode():
            features = features.float()
            classifier = self.classifier(features, options)
            concepts = None
            if self.decoder.concept_reader is not None:
                shared = classifier if self.shares_head and classifier is not None else ()
                concepts = self.decoder.concept_reader(features, *shared).probs
            tags, grounding = self.ground(features, options, concepts, classifier)
            hypotheses = search(self.decoder_for(options), features, options,
                                self.content_words.to(features.device), grounding, concepts,
                                self.generator(options, features.device))
        return Decoded(hypotheses, tags, concepts)

    def read(self, features: torch.Tensor, ids: list[int], options: DecodeOptions | None = None
             ) -> Walk:
        """A given caption (ids: <start> w1 .. wn <end>) read through the same steps, each fed
        the given word: the probabilities (fusion and hard-attention mode included) the search
        would have seen, and each word's map. features (1, L, D)."""
        options = resolve_options(options, {})
        self.check(options)
        given = torch.tensor(ids[1:], device=features.device)

        def choose(scores: torch.Tensor, step: int) -> torch.Tensor:
            return given[step].expand(scores.shape[0])

        with torch.inference_mode():
            return walk(self.decoder_for(options), features.float(), len(ids) - 2, choose,
                        hard_mode=options.hard_mode, temperature=options.attention_temperature,
                        generator=self.generator(options, features.device))

    @cached_property
    def tagger(self) -> Tagger:
        """The vocabulary's ImageNet tagger, built at the first grounded call."""
        return Tagger(self.vocab)

    @property
    def samples_locations(self) -> bool:
        """Whether the model's attention draws its regions (hard attention)."""
        return attention_entry(self.decoder.config.attention).reinforce

    def check(self, options: DecodeOptions) -> None:
        """A ValueError for options this decoding cannot honour."""
        if options.hard_mode is not None and not self.samples_locations:
            raise ValueError(f"hard_mode applies to hard attention only; this model's attention "
                             f"is {self.decoder.config.attention!r} (asked: "
                             f"{options.hard_mode!r})")
        if options.grounding and self.encoder is None:
            raise ValueError("grounding needs the encoder's ImageNet classifier, and this "
                             "decoding has no encoder (decode with grounding=False)")

    def generator(self, options: DecodeOptions, device: torch.device
                  ) -> torch.Generator | None:
        """The call's own generator for sampled hard attention, seeded with options.seed
        (None: torch's default generator; a model that draws nothing needs none)."""
        if options.seed is None or not self.samples_locations:
            return None
        return torch.Generator(device=device).manual_seed(options.seed)

    def decoder_for(self, options: DecodeOptions) -> Decoder | FusedDecoder:
        """The decoder, fused with the caption language model when options ask."""
        if not options.fusion_weight:
            return self.decoder
        if self.language_model is None:
            raise ValueError("fusion_weight needs a caption language model; this decoding "
                             "has none (decode with fusion_weight=0)")
        with self._fusion_lock:  # sessions share the model: load the language model once
            if self._fused is None:
                self._fused = FusedDecoder(self.decoder, self.language_model(), self.vocab,
                                           options.fusion_weight)
        fused = self._fused
        return fused if fused.weight == options.fusion_weight else fused.with_weight(
            options.fusion_weight)

    def classifier(self, features: torch.Tensor, options: DecodeOptions
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The encoder's ImageNet head on the photos, (B, 1000) logits, and on each cell,
        (B, L, 1000), when grounding asks for them (None: not asked, or no head)."""
        if not options.grounding or self.encoder is None:
            return None
        photo = self.encoder.imagenet_logits(features)
        return None if photo is None else (photo, self.encoder.imagenet_cell_logits(features))

    def ground(self, features: torch.Tensor, options: DecodeOptions,
               concepts: torch.Tensor | None = None,
               classifier: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[list[list[Tag]], Grounding | None]:
        """Each photo's tags, and what the search needs of them (None: nothing to constrain,
        when options turn grounding off or the encoder has no ImageNet head, and no person
        floor applies); concepts (B, K): the photos' concept probabilities, for the person
        floor; classifier: self.classifier's (None: read here)."""
        none = [[] for _ in range(features.shape[0])]
        unseen = self._unseen_people(features, options.person_floor, concepts)
        classifier = classifier or self.classifier(features.float(), options)
        if classifier is None:
            return none, (None if unseen is None else Grounding.vetoes_only(unseen))
        evidence = self.tagger.evidence(*classifier)
        tags = self.tagger.tags(evidence, options.tag_threshold, options.max_tags,
                                imagenet_names())
        grounding = self.tagger.grounding(tags, options.veto_threshold, evidence,
                                          options.evidence_floor, features.device)
        if unseen is not None:
            grounding = grounding._replace(vetoed=grounding.vetoed | unseen.to(
                grounding.vetoed.device))
        return tags, grounding

    def _unseen_people(self, features: torch.Tensor, floor: float,
                       concepts: torch.Tensor | None) -> torch.Tensor | None:
        """(B, V) True at person words of photos whose person concept (concepts (B, K)) is
        below floor; None when off or the model has no person detector."""
        config = self.decoder.config
        if not floor or concepts is None or "person" not in config.concepts:
            return None
        person = concepts[:, config.concepts.index("person")]
        ids = [self.vocab.stoi[w] for w in PERSON_WORDS if w in self.vocab.stoi]
        if not ids:
            return None
        vetoed = torch.zeros(features.shape[0], len(self.vocab), dtype=torch.bool,
                             device=features.device)
        unseen = (person < floor).nonzero().squeeze(1).unsqueeze(1).to(features.device)
        vetoed[unseen, torch.tensor(ids, dtype=torch.long, device=features.device)] = True
        return vetoed

