"""New words for a trained model: a larger vocabulary whose old words keep their weights.

Fine-tuning a model (--init) on new captions would otherwise map every word its vocabulary
lacks to <unk>, so it could never learn to say "zebra". `grow_vocabulary` appends the words and
gives each vocabulary-sized tensor of the decoder (the embedding E and the output layer's
weight and bias) one new row per word. The old rows are copied unchanged, so the old words'
logits, and hence the captions the model writes with them, stay what they were until training
changes the weights. A new word starts either from a related known word's rows (`like`, as
DCC and NOC transfer the weights of a similar word: zebra from horse) or from neutral rows that
keep it out of captions until it is learnt. Pure: no files, no prints.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

import torch

from captioner.checkpoint import Checkpoint
from captioner.config import ModelConfig
from captioner.build import build_decoder
from captioner.vocab import SPECIALS, Vocabulary

# A new word's output bias when no related word is named: this quantile of the known words'
# biases. The bias holds a word's prior frequency; starting in the rarest tenth keeps an
# unlearnt word from being chosen over the words the model knows (its logit is otherwise an
# average word's), while the cross-entropy's gradient raises it quickly once the word appears
# in the training captions.
NEW_WORD_BIAS_QUANTILE = 0.1


def grow_vocabulary(checkpoint: Checkpoint, new_words: Sequence[str],
                    like: Mapping[str, str] | None = None) -> Checkpoint:
    """`checkpoint` with the words of `new_words` it lacks appended to its vocabulary (in the
    given order; known words and repeats are skipped) and rows added to every vocabulary-sized
    decoder tensor. Old ids and rows are unchanged.

    like: new word -> a related word of the old vocabulary whose rows the new word starts
    from (entries for words not being added are ignored). Otherwise the new rows are the mean
    of the known words' rows and a low output bias (NEW_WORD_BIAS_QUANTILE).

    Returns a new Checkpoint (the input is not modified; unchanged tensors are shared) without
    training state, since an optimizer's state no longer fits the grown tensors; the same
    checkpoint when no word is new."""
    old = checkpoint.vocab
    added = list(dict.fromkeys(w for w in new_words if w not in old.stoi))
    if not added:
        return checkpoint
    if any(not w or w != w.strip() for w in added):
        raise ValueError("new words must be non-empty and without surrounding spaces")
    sources = related_ids(old, added, like or {})
    config = dataclasses.replace(checkpoint.config, vocab_size=len(old) + len(added))
    decoder = dict(checkpoint.decoder)
    for name, dim in vocabulary_dims(checkpoint.config).items():
        decoder[name] = _grown(checkpoint.decoder[name], dim, added, sources)
    metadata = dict(checkpoint.metadata)
    metadata["vocabulary_growth"] = [*metadata.get("vocabulary_growth", []),
                                     {"from": len(old), "added": len(added),
                                      "like": {w: like[w] for w in added if w in sources}}]
    return dataclasses.replace(checkpoint, config=config,
                               vocab=Vocabulary(old.itos + added), decoder=decoder,
                               metadata=metadata, training=None)


def related_ids(vocab: Vocabulary, added: Iterable[str], like: Mapping[str, str]
                ) -> dict[str, int]:
    """new word -> the id of its related word; a related word must be an ordinary word of
    the old vocabulary (not a special token, not another new word)."""
    sources, unknown = {}, []
    for word in added:
        related = like.get(word)
        if related is None:
            continue
        index = vocab.stoi.get(related)
        if index is None or index < len(SPECIALS):
            unknown.append(f"{word}->{related}")
        else:
            sources[word] = index
    if unknown:
        raise ValueError(f"related words not in the model's vocabulary: {', '.join(unknown)}")
    return sources


def vocabulary_dims(config: ModelConfig) -> dict[str, int]:
    """name -> the dimension that has one entry per word, for each decoder tensor whose shape
    depends on the vocabulary size. Read off the decoder itself (built on the meta device, so
    no memory or time), so every decoder kind is covered without a list to keep up to date."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_decoder(config).state_dict().items()}
        larger = build_decoder(dataclasses.replace(config, vocab_size=config.vocab_size + 1))
    dims = {}
    for name, tensor in larger.state_dict().items():
        changed = [d for d, (a, b) in enumerate(zip(shapes[name], tensor.shape)) if a != b]
        if changed:
            dims[name] = changed[0]
    return dims


def _grown(tensor: torch.Tensor, dim: int, added: list[str], sources: dict[str, int]
           ) -> torch.Tensor:
    """tensor with one slice per added word appended along dim."""
    rows = tensor.movedim(dim, 0)  # (V, ...)
    words = rows[len(SPECIALS):]  # the special tokens' rows are not word-like (<pad> is unused)
    if rows.dim() == 1:  # an output bias: a low prior (see NEW_WORD_BIAS_QUANTILE)
        default = torch.quantile(words.float(), NEW_WORD_BIAS_QUANTILE).to(rows.dtype)
    else:  # an embedding or output weight: the average word
        default = words.mean(dim=0)
    new = torch.stack([rows[sources[w]] if w in sources else default for w in added])
    return torch.cat([rows, new]).movedim(0, dim).contiguous()


def words_to_add(vocab: Vocabulary, captions: Iterable[Sequence[str]], min_count: int
                 ) -> list[str]:
    """The words a vocabulary built from `captions` (Vocabulary.build, at min_count) has and
    `vocab` lacks, most frequent first."""
    return [w for w in Vocabulary.build(captions, min_count).itos if w not in vocab.stoi]
