"""Concepts: what a photo holds, as word probabilities the decoder reads at every step.

Two kinds of evidence, both computed from the encoder's grid alone, so a decoder that reads
concepts still needs nothing but the annotation vectors:

- **Detected concepts** (Fang et al. 2015, "From captions to visual concepts and back"): one
  linear detector per word that Flickr8k's captions use often (man, dog, snow, beach, ...),
  scoring every grid cell; a photo holds the word when any cell does (noisy-OR over cells,
  multiple-instance learning: a photo is positive for a word its captions use, and nobody says
  which cell). Trained by `training.concepts` from captions only.
- **ImageNet concepts**: the encoder's own ImageNet head through the WordNet word table
  (captioner/data/imagenet_words.json), for objects Flickr8k never showed (toilet, broccoli,
  espresso -> coffee). A word's confidence is the geometric mean of the photo's probability and
  the best cell's, as the tagger (captioner.grounding) measures it.

Both give a map over the grid as well (the detector's cell probabilities; the class activation
map of the word's classes), which training uses as the target of attention supervision.
The head's weights are copied into the reader as buffers, so a checkpoint carries everything
its concepts need and the reader never touches the encoder.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_CLASSES = 1000
# The reader's copy of the encoder's ImageNet head: a shipped file leaves it out (it is the
# wheel's own classifier) and loading fills it in from the encoder (captioner.build).
HEAD_KEYS = ("concept_reader.head_weight", "concept_reader.head_bias")
# Words that say someone is in the photo, matched as whole words of the lower-cased caption. A
# word list, not a parser: "a couple of dogs" and "a baby elephant" count as people here.
PERSON_WORDS = frozenset((
    "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "child", "children", "kid",
    "kids", "person", "people", "player", "players", "guy", "lady", "ladies", "baby", "toddler",
    "skier", "snowboarder", "surfer", "skateboarder", "rider", "biker", "cyclist", "crowd",
    "couple", "family", "team", "he", "she", "someone"))


class ConceptEvidence(NamedTuple):
    probs: torch.Tensor  # (B, K) p(concept | photo), detected concepts first
    maps: torch.Tensor  # (B, L, K) where each concept is, a distribution over the L cells


class ConceptReader(nn.Module):
    """Annotation grid (B, L, D) -> ConceptEvidence over `detected` + `imagenet` concepts."""

    def __init__(self, encoder_dim: int, detected: int, imagenet: int):
        super().__init__()
        self.detected, self.imagenet = detected, imagenet
        # a word's score of one cell (None: no detected concepts)
        self.detectors = nn.Linear(encoder_dim, detected) if detected else None
        # The encoder's ImageNet head (copied in by `set_imagenet_head`) and which classes
        # make each ImageNet concept: (1000, K_imagenet), 1 where class c names concept k.
        self.register_buffer("head_weight", torch.zeros(IMAGENET_CLASSES, encoder_dim))
        self.register_buffer("head_bias", torch.zeros(IMAGENET_CLASSES))
        self.register_buffer("class_concepts", torch.zeros(IMAGENET_CLASSES, imagenet))

    @property
    def size(self) -> int:
        return self.detected + self.imagenet

    def set_imagenet_head(self, weight: torch.Tensor, bias: torch.Tensor,
                          class_concepts: torch.Tensor) -> None:
        with torch.no_grad():
            self.head_weight.copy_(weight)
            self.head_bias.copy_(bias)
            self.class_concepts.copy_(class_concepts)

    def cell_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, K_detected): each detector's logit for each cell."""
        return self.detectors(features)

    def forward(self, features: torch.Tensor, photo_logits: torch.Tensor | None = None,
                cell_logits: torch.Tensor | None = None) -> ConceptEvidence:
        """photo_logits (B, 1000) and cell_logits (B, L, 1000): the ImageNet head's, when the
        caller has them from the very same head (decoding's tagger), else computed here."""
        features = features.float()
        if self.detectors is None:
            scores = features.new_zeros(*features.shape[:2], 0)
        else:
            scores = self.cell_scores(features)  # (B, L, Kd)
        # noisy-OR over cells: 1 - prod_i (1 - sigmoid(z_i)) = 1 - exp(-sum_i softplus(z_i))
        detected = -torch.expm1(-F.softplus(scores).sum(1))  # (B, Kd)
        detected_maps = torch.sigmoid(scores)
        detected_maps = detected_maps / detected_maps.sum(1, keepdim=True).clamp_min(1e-12)
        if not self.imagenet:
            return ConceptEvidence(detected, detected_maps)
        if photo_logits is None:
            photo_logits = F.linear(features.mean(1), self.head_weight, self.head_bias)
        if cell_logits is None:
            cell_logits = F.linear(features, self.head_weight, self.head_bias)
        photo = photo_logits.float().softmax(-1)
        cells = cell_logits.float().softmax(-1)  # (B, L, 1000)
        per_cell = cells @ self.class_concepts  # (B, L, Ki)
        confidence = (photo @ self.class_concepts * per_cell.amax(1)).clamp_min(0).sqrt()
        imagenet_maps = per_cell / per_cell.sum(1, keepdim=True).clamp_min(1e-12)
        return ConceptEvidence(torch.cat([detected, confidence], 1),
                               torch.cat([detected_maps, imagenet_maps], 2))


def class_concept_matrix(classes: dict[int, str], words: tuple[str, ...]) -> torch.Tensor:
    """(1000, len(words)): 1 where ImageNet class c's caption word is words[k]."""
    index = {w: k for k, w in enumerate(words)}
    matrix = torch.zeros(IMAGENET_CLASSES, len(words))
    for cls, word in classes.items():
        if word in index:
            matrix[cls, index[word]] = 1.0
    return matrix
