"""Train Show, Attend and Tell on cached encoder features.

    python -m training.train --data ../shared/data/flickr8k/dataset_flickr8k.json \
        --attention soft --out runs/soft
    python -m training.train ... --resume        # continue from runs/soft/last.pt
    torchrun --nproc_per_node=4 -m training.train ... --device cuda --precision bf16

Writes to --out: last.pt (every --checkpoint-every steps and at each epoch end, atomically,
with optimizer/scheduler/RNG/data position), best.pt (best validation BLEU-4), model.pt
(best.pt as training.export ships a model: float16, no training state; the file to upload to
the app), log.jsonl (one JSON line per logging step and per validation) and curves.png.

With --init, the training captions' words that the checkpoint lacks (seen --min-word-count
times) join its vocabulary, old ids and weights unchanged (training.vocab_growth), instead of
becoming <unk>; --no-grow-vocabulary keeps the checkpoint's vocabulary.
"""
from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import torch

from captioner.build import build_decoder
from captioner.checkpoint import Checkpoint, load_checkpoint, torch_message
from captioner.concepts import HEAD_KEYS
from captioner.config import ModelConfig
from captioner.encoder import build_encoder, encoder_spec
from captioner.inference import resolve_checkpoint
from captioner.vocab import Vocabulary

from .batches import CachedBatches, Mirroring, caption_table
from .commands import prog
from .concept_data import ConceptBatches, ConceptSource
from .concepts import concept_forms, imagenet_reader
from .config import TrainConfig, parse_config
from .distributed import Runtime
from .features import cached_features
from .loop import Stage, StageData, TrainingError, make_stage, teacher_forcing
from .runner import (Start, feature_caches, require_pretrained_encoder, run_command,
                     run_stage, with_new_words)
from .text_concepts import load_caption_text, new_words, text_items
from .vocab_growth import grow_vocabulary


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun every process runs this function; rank 0 alone validates and writes.
    """
    return run_stage(build_stage, config)


def build_stage(config: TrainConfig, runtime: Runtime, start: Start) -> Stage:
    """The decoder, trained by teacher forcing on cached features of a frozen encoder."""
    dataset, train_records, resumed = start.dataset, start.train_records, start.resumed
    concepts = read_concept_file(config.concept_file) if config.concept_file else None
    text = load_caption_text(config.caption_text) if config.caption_text else None
    if text is not None:
        if concepts is None:
            raise TrainingError("--caption-text needs --concept-file: text reaches the decoder "
                                "through concepts")
        text = text[:config.text_groups or None]
    if concepts is not None and config.flip_augment:
        raise TrainingError("--flip-augment does not combine with --concept-file (the concept "
                            "vectors are the plain photos')")
    vocab, model_config, init = starting_model(config, start, runtime, concepts, text)
    config = dataclasses.replace(config, model=model_config)  # what the checkpoints record
    cache, *mirrored = feature_caches(dataset, config, model_config, runtime,
                                      train_records if config.flip_augment else None)
    if init is None and resumed is None:
        random.seed(config.seed)
    if resumed is None:
        torch.manual_seed(config.seed)  # the same initial weights in every process
    decoder = build_decoder(model_config).to(runtime.device)
    if resumed is not None:
        decoder.load_state_dict(resumed.decoder)
    elif init is not None:
        load_init_weights(decoder, init.decoder, config.init)
    if concepts is not None and resumed is None and not (init and init.config.concept_count):
        install_concept_reader(decoder, concepts)  # a reader --init already has is kept
    elif init is not None and init.config.imagenet_concepts and HEAD_KEYS[0] not in init.decoder:
        # a shipped file leaves the encoder's ImageNet head out: its reader takes it again
        weight, bias = build_encoder(model_config.encoder).imagenet_head_weights()
        decoder.concept_reader.set_imagenet_head(weight, bias,
                                                 decoder.concept_reader.class_concepts.clone())
    table = caption_table(train_records, cache, vocab)
    word_concepts = None
    if concepts is not None:
        items = text_items(text or [], model_config.concepts + model_config.imagenet_concepts)
        first_text = cache.features.shape[0]
        table += [(first_text + g, vocab.encode(caption))
                  for g, group in enumerate(items.captions) for caption in group]
        source = ConceptSource(photo_concepts(concepts, cache), items,
                               concepts["positive_quantiles"], concepts["negative_quantiles"],
                               config.concepts_only, config.text_grids, config.seed)
        reader = lambda batches, epoch: ConceptBatches(table, batches, cache, source, epoch)
        word_concepts = concept_of_words(vocab, model_config).to(runtime.device)
    else:
        mirroring = (Mirroring.build(cache, mirrored[0], [r.path for r in train_records],
                                     vocab, config.seed) if mirrored else None)
        reader = lambda batches, epoch: CachedBatches(table, batches, cache, mirroring, epoch)
    data = StageData(table, reader, cached_features(cache, runtime.device))
    for p in (decoder.concept_reader.parameters() if decoder.concept_reader is not None else ()):
        p.requires_grad_(False)  # the detectors are trained by training.concepts alone
    param_groups = None
    if concepts is not None and config.concept_lr_scale != 1.0:
        fresh = [p for name, p in decoder.named_parameters()
                 if name.startswith(("concept_gates.", "concept_readout.")) and p.requires_grad]
        fresh_ids = {id(p) for p in fresh}
        rest = [p for p in decoder.parameters() if p.requires_grad and id(p) not in fresh_ids]
        param_groups = [{"params": rest},
                        {"params": fresh, "lr": config.lr * config.concept_lr_scale}]
    return make_stage(
        config, runtime, vocab, decoder, data, teacher_forcing, word_concepts=word_concepts,
        param_groups=param_groups,
        summary=f"{dataset.name}: {len(train_records)} train images, {len(table)} captions, "
                f"{len(start.val_records)} val images, vocabulary {len(vocab)}, grid "
                f"{cache.grid}, {sum(p.numel() for p in decoder.parameters()):,} decoder "
                f"parameters, {runtime.world_size} process(es) on {runtime.device.type}, "
                f"{config.precision}")


def starting_model(config: TrainConfig, start: Start, runtime: Runtime,
                   concepts: dict | None = None, text: list | None = None
                   ) -> tuple[Vocabulary, ModelConfig, Checkpoint | None]:
    """The vocabulary and model config: last.pt's when resuming, --init's (and that
    checkpoint), or new ones from the training captions and the model flags; with a concept
    file, a model that reads its concepts, and the text's words in its vocabulary."""
    resumed = start.resumed
    init = (load_checkpoint(resolve_checkpoint(config.init)) if config.init and resumed is None
            else None)
    text_captions = [c for group in text or [] for c in group]
    if resumed is not None:
        return resumed.vocab, resumed.config, None
    if init is not None:
        require_pretrained_encoder(init, config.init, "continue it with training.finetune")
        if config.grow_vocabulary:
            init = with_new_words(init, config.init, start.train_records,
                                  config.min_word_count, runtime)
        if text_captions:
            words = new_words(text or [], set(init.vocab.stoi), config.text_min_count)
            if runtime.is_main:
                shown = ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")
                print(f"{len(words)} word(s) of the caption text join the vocabulary"
                      + (f" ({shown})" if words else ""), file=sys.stderr)
            init = grow_vocabulary(init, words)
        vocab, model_config = init.vocab, config.init_model_config(init.config, config.init)
        # A decoding temperature (and int8 decoding) was chosen for the init's weights;
        # trained further, the model decodes as it is trained until an export chooses them
        # for the new weights.
        model_config = dataclasses.replace(model_config, attention_temperature=1.0,
                                           quantized=False)
    else:
        vocab = Vocabulary.build([*(c for r in start.train_records for c in r.captions),
                                  *text_captions], config.min_word_count)
        model_config = config.model_config(len(vocab), encoder_spec(config.model.encoder).dim)
    if concepts is not None:
        model_config = dataclasses.replace(
            model_config, concepts=tuple(concepts["concepts"]),
            imagenet_concepts=tuple(concepts["imagenet_concepts"]))
    return vocab, model_config, init


def read_concept_file(path: str) -> dict:
    """A training.concepts file (weights_only: plain tensors, lists and numbers)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise TrainingError(f"{path}: not a readable concept file "
                            f"({torch_message(str(exc))})") from None
    missing = {"concepts", "imagenet_concepts", "detector", "paths", "table",
               "positive_quantiles", "negative_quantiles"} - set(data)
    if missing:
        raise TrainingError(f"{path}: not a concept file (missing {', '.join(sorted(missing))})")
    return data


def load_init_weights(decoder: torch.nn.Module, state: dict, name: str) -> None:
    """--init's weights; the concept layers it lacks keep their zero start."""
    missing, unexpected = decoder.load_state_dict(state, strict=False)
    new = [k for k in missing if not k.startswith(("concept_reader.", "concept_gates.",
                                                    "concept_readout."))]
    if new or unexpected:
        raise TrainingError(f"{name}: its weights do not fit this model (missing "
                            f"{', '.join(new[:5]) or 'none'}; unexpected "
                            f"{', '.join(unexpected[:5]) or 'none'})")


def install_concept_reader(decoder: torch.nn.Module, concepts: dict) -> None:
    """The file's detectors and the encoder's ImageNet head, in the decoder's reader."""
    reader = decoder.concept_reader
    with torch.no_grad():
        reader.detectors.weight.copy_(concepts["detector"]["weight"])
        reader.detectors.bias.copy_(concepts["detector"]["bias"])
    words = tuple(concepts["imagenet_concepts"])
    head = imagenet_reader(decoder.config.encoder, words, decoder.config.encoder_dim)
    reader.set_imagenet_head(head.head_weight, head.head_bias, head.class_concepts)


def photo_concepts(concepts: dict, cache) -> torch.Tensor:
    """(N, K) concept vectors in the cache's row order."""
    table = torch.zeros(cache.features.shape[0], concepts["table"].shape[1])
    rows = [(cache.index[p], i) for i, p in enumerate(concepts["paths"]) if p in cache.index]
    if len(rows) < len(cache.index):
        raise TrainingError("the concept file was made for another feature cache: "
                            f"{len(cache.index) - len(rows)} cached photos have no concepts")
    to, frm = zip(*rows)
    table[list(to)] = concepts["table"][list(frm)].float()
    return table


def concept_of_words(vocab: Vocabulary, config: ModelConfig) -> torch.Tensor:
    """(V,) the concept whose map supervises each word's attention, -1 for none: an ImageNet
    concept (its class activation map) before a detected one (its cells)."""
    out = torch.full((len(vocab),), -1, dtype=torch.long)
    detected = len(config.concepts)
    for k, word in enumerate(config.concepts):
        for form in concept_forms(word):
            if form in vocab.stoi and form not in ("he", "she"):
                out[vocab.stoi[form]] = k
    for k, word in enumerate(config.imagenet_concepts):
        for form in concept_forms(word):
            if form in vocab.stoi:
                out[vocab.stoi[form]] = detected + k
    return out


def main(argv: list[str] | None = None) -> int:
    return run_command(train, parse_config(argv, prog("train")))


if __name__ == "__main__":
    sys.exit(main())
