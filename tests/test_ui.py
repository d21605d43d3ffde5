"""The app's pure pieces (ui/): the download format, explain's unknown words, the grounding
text and how each hard-attention mode is drawn. No Streamlit page, no model run."""
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from captioner import Caption
from captioner.config import ModelConfig
from captioner.options import DEFAULT_OPTIONS
from captioner.grounding import Tag
from captioner.imagenet import Label, imagenet_names
from captioner.inference import Explanation, Timing
from captioner.object_words import object_words
from ui.downloads import (CAPTION_SCHEMA, ModelName, caption_json, caption_record,
                          explanation_record)
from ui.grounding import (coarse_kinds, grounding_markdown, label_kind, spread_line, tag_line,
                          thresholds_sentence)
from ui.maps import HARD_MODES_SHOWN, draw_flags, hard_mode_cue, hard_mode_note
from ui.models import Model, ModelSource
from ui.support import (PIN, confidence_markdown, explanation_markdown, known_log_prob,
                        unknown_words_line)

OSTRICH, CAMEL, LLAMA, JAGUAR = (imagenet_names()[i] for i in (9, 354, 355, 290))
BOTTLE, DALMATIAN = imagenet_names()[440], imagenet_names()[251]


def a_caption(rng: np.random.Generator, words=("two", "birds", "on", "grass")) -> Caption:
    alphas = rng.random((len(words), 7, 7)).astype(np.float32)  # as a model gives them
    alphas /= alphas.sum(axis=(1, 2), keepdims=True)
    tag = Tag("bird", 0.4412345, (OSTRICH,), "bird")
    return Caption(words=list(words), score=-1.23456789, log_prob=-9.87654321, alphas=alphas,
                   word_probs=[0.912345678, 0.0123456, 0.5, 0.3333333],
                   imagenet=[Label(OSTRICH, 0.18123), Label(LLAMA, 0.12), Label(CAMEL, 0.05)],
                   image_size=(640, 480), timing=Timing(1.23456, 20.5, 30.25), tags=[tag],
                   tagged=[None, "bird", None, None])


def an_explanation() -> Explanation:
    words = ["two", "zebras", "eating", "hay", "in", "a", "zoo"]
    known = [True, False, True, True, True, True, False]
    probs = [0.04, 0.06, 0.0004, 0.0002, 0.2, 0.46, 0.22]
    end = 0.5
    log_prob = sum(math.log(p) for p in probs) + math.log(end)
    return Explanation(words, known, probs, end, log_prob,
                       np.full((7, 7, 7), 1 / 49, dtype=np.float32))


# --- downloads ---------------------------------------------------------------------------

def test_caption_json_names_no_server_path_rounds_and_has_a_schema(tmp_path):
    caption = a_caption(np.random.default_rng(0))
    source = ModelSource("startup", "Checkpoint my model.pt", tmp_path / "deep" / "my model.pt")
    model = Model(None, source, (str(source.path), 1))
    data = caption_json(caption, "birds.jpg", model.name, DEFAULT_OPTIONS, seed=None,
                        explanation=an_explanation())
    text = data.decode()
    assert str(tmp_path) not in text and "/deep/" not in text  # no server path, anywhere
    record = json.loads(text)
    assert record["schema"] == CAPTION_SCHEMA == {"name": "captioner-app-caption", "version": 1}
    assert record["model"] == {"name": "Checkpoint my model.pt", "file": "my model.pt"}
    assert record["decoding"] == {**DEFAULT_OPTIONS.to_dict(), "seed": None}
    # Probabilities and scores to 3 decimals, maps to 4.
    assert record["word_probs"] == [0.912, 0.012, 0.5, 0.333]
    assert record["score"] == -1.235 and record["log_prob"] == -9.877
    assert record["tags"][0]["confidence"] == 0.441
    assert record["imagenet_top5"][0]["probability"] == 0.181
    maps = np.asarray(record["attention"])
    assert maps.shape == caption.alphas.shape
    assert np.abs(maps - caption.alphas).max() <= 5e-5
    assert not re.search(r"\d\.\d{5,}", text)  # nothing printed to more than 4 decimals
    # 11 maps of 7x7 (4 words, 7 explained) and the rest: a map row is one short line.
    assert len(data) < 7000
    assert len(caption_json(caption, "birds.jpg", model.name, DEFAULT_OPTIONS)) < 3500
    assert record["tagged_words"] == [None, "bird", None, None]


def test_uploaded_and_shipped_models_are_named_by_file_name_only(tmp_path):
    upload = ModelSource("upload", "Upload mine.pt", upload=(b"...", "mine.pt"))
    assert Model(None, upload, ()).name == ModelName("Upload mine.pt", "mine.pt")
    shipped = ModelSource("soft", "Soft attention (shipped)", Path("/opt/w/soft_flickr8k.pt"))
    assert Model(None, shipped, ()).name.to_dict() == {"name": "Soft attention (shipped)",
                                                       "file": "soft_flickr8k.pt"}


def test_the_seed_of_sampled_hard_attention_is_recorded():
    caption = a_caption(np.random.default_rng(1))
    record = caption_record(caption, "x.jpg", ModelName("m", "m.pt"),
                            DEFAULT_OPTIONS.replace(hard_mode="sample"), seed=7)
    assert record["decoding"]["hard_mode"] == "sample" and record["decoding"]["seed"] == 7


# --- explain: unknown words --------------------------------------------------------------

def test_unknown_words_have_no_probability_and_a_line_says_what_they_cost():
    explanation = an_explanation()
    shown = explanation_markdown(explanation)
    units = re.findall(r'nowrap">(.*?)</span>', shown)
    assert units[1] == "~~zebras~~&nbsp;:gray[(unknown)]"  # struck through, no number
    assert units[6] == "~~zoo~~&nbsp;:gray[(unknown)]"
    assert not re.search(r"zebras.*?\d+%.*?eating", shown)
    assert units[0] == "two&nbsp;:red-background[4%]"
    known = sum(math.log(p) for p, k in zip(explanation.word_probs, explanation.known) if k)
    assert known_log_prob(explanation) == pytest.approx(known + math.log(0.5))
    line = unknown_words_line(explanation)
    assert "“zebras”, “zoo”" in line
    assert f"**{known + math.log(0.5):.2f}**" in line
    cost = math.log(0.06) + math.log(0.22)
    assert f"cost the caption {-cost:.2f}" in line
    assert "sum of the log-probabilities of its known words" in line
    assert unknown_words_line(dataclasses.replace(explanation, known=[True] * 7)) is None


def test_the_explained_caption_in_the_download_has_null_for_unknown_words():
    record = explanation_record(an_explanation())
    assert record["word_probs"] == [0.04, None, 0.0, 0.0, 0.2, 0.46, None]
    assert record["unknown_words"] == ["zebras", "zoo"]
    assert record["log_prob_known_words"] == round(known_log_prob(an_explanation()), 3)
    assert np.asarray(record["attention"]).shape == (7, 7, 7)


# --- grounding, as the page says it ---------------------------------------------------------

class KindClass(NamedTuple):
    """A word-table entry as the table with kinds has it (ClassWord with a `kind` field)."""
    label: str
    word: str
    category: str | None
    depth: int
    target: str
    kind: str | None


def test_a_pinned_word_shows_its_labels_confidence_not_the_word_probability():
    caption = a_caption(np.random.default_rng(2))
    shown = confidence_markdown(caption.words, caption.word_probs, caption.tagged, caption.tags)
    units = re.findall(r'nowrap">(.*?)</span>', shown)
    assert units[1] == f":blue[**birds**&nbsp;{PIN}]&nbsp;:blue-background[CNN 44%]"
    assert "1%" not in units[1]  # the caption model's p("birds") is not beside the pin
    assert units[0] == "two&nbsp;:green-background[91%]"
    assert len(units) == 4  # each word and its number one unit that does not wrap


def test_the_grounding_text_gives_labels_rivals_and_the_thresholds_in_use():
    caption = a_caption(np.random.default_rng(3))
    options = DEFAULT_OPTIONS.replace(tag_threshold=0.25, veto_threshold=0.9)
    text = grounding_markdown(caption.tags, caption.words, caption.word_probs, caption.tagged,
                              caption.imagenet, options)
    assert "reaches 25%" in text and "at 90% it also bars" in text
    assert thresholds_sentence(options) in text
    [line] = [l for l in text.splitlines() if l.startswith("- ")]
    assert "**bird** · the CNN's confidence **44%** from ostrich 18%" in line
    assert "placed as “birds”, a word the caption model gave 1%" in line
    assert "rivals: llama 12%, Arabian camel 5%" in line
    none = grounding_markdown([], ["a"], [0.5], [None], caption.imagenet, DEFAULT_OPTIONS)
    assert none.startswith("No label was sure enough") and "reaches 30%" in none
    other = Tag("zebra", 0.35, ("zebra",), "zebra")
    unplaced = tag_line(other, caption.words, caption.word_probs, caption.tagged,
                        caption.imagenet, [caption.tags[0], other])
    assert "asked for, but not placed" in unplaced and "the tag **bird** (44%)" in unplaced


def test_spread_evidence_is_summed_by_kind_from_the_tables_kind_field():
    classes = dict(object_words().classes)
    for index, word in ((9, "bird"), (354, "camel"), (355, "llama"), (290, "jaguar")):
        classes[index] = KindClass(imagenet_names()[index], word, None, 1, "x", "animal")
    labels = [Label(OSTRICH, 0.18), Label(LLAMA, 0.12), Label(CAMEL, 0.05),
              Label(BOTTLE, 0.04)]
    [animal, bottle] = coarse_kinds(labels, classes)
    assert animal.kind == "animal" and animal.probability == pytest.approx(0.35)
    assert bottle.kind == "container"  # the table's own kind
    line = spread_line(labels, classes)
    assert line.startswith("**At a coarser level**: the top 5 labels give 35% to an animal")
    assert "ostrich 18%, llama 12%, Arabian camel 5%" in line


def test_without_a_kind_field_the_coco_supercategory_is_the_kind():
    # The table's kinds, taken up to the broadest: a bird and a dog are animals.
    assert label_kind(OSTRICH) == "animal" and label_kind(DALMATIAN) == "animal"
    assert label_kind(LLAMA) == "animal" and label_kind(BOTTLE) == "container"
    line = spread_line([Label(OSTRICH, 0.2), Label(DALMATIAN, 0.15), Label(LLAMA, 0.1)])
    assert "45% to an animal (ostrich 20%, dalmatian 15%, llama 10%)" in line
    # Without a kind field: the COCO supercategory of the word's category.
    plain = {i: KindClass(*c[:5], None) for i, c in object_words().classes.items()}
    assert label_kind(OSTRICH, plain) == "animal" and label_kind(BOTTLE, plain) == "bottle"
    # One thing in many labels (three cats) is not spread evidence: the tag says it already.
    cats = [Label(imagenet_names()[i], p) for i, p in ((285, 0.5), (281, 0.2), (282, 0.1))]
    assert spread_line(cats) is None


# --- hard attention's modes ----------------------------------------------------------------

def test_each_hard_mode_is_drawn_and_said_its_own_way():
    hard = ModelConfig(vocab_size=10, attention="hard")
    soft = ModelConfig(vocab_size=10, attention="soft")
    assert draw_flags(hard, "argmax", True, 0.6)["hard"]  # the cell used, outlined
    expectation = draw_flags(hard, "expectation", True, 0.6)
    sample = draw_flags(hard, "sample", True, 0.6)
    assert not expectation["hard"] and not sample["hard"]  # no outline: no single cell read
    assert not expectation["smooth"] and sample["opacity"] < expectation["opacity"]
    assert draw_flags(soft, "argmax", True, 0.5) == {"hard": False, "window": False,
                                                     "smooth": True, "opacity": 0.5}
    assert set(HARD_MODES_SHOWN) == {"expectation", "argmax", "sample"}
    assert "weighted average" in hard_mode_note("expectation")
    assert "outlined" in hard_mode_note("argmax")
    assert hard_mode_note("sample", 12).endswith("Seed 12.")
    assert "drawn" in hard_mode_note("sample", 12)
    # Over the overlays: the mode's icon and what its drawing marks.
    assert hard_mode_cue("argmax").startswith(":material/crop_free: Argmax: the outlined cell")
    assert hard_mode_cue("sample", 3) == (":material/casino: Sample: the faint map is what "
                                          "each word's cell was drawn from. Seed 3.")
