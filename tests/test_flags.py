"""captioner.flags: the one generator of command-line flags from dataclass fields, used by the
CLI, training.evaluate and every training stage (training.config)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from captioner import flags
from captioner.config import ModelConfig
from captioner.flags import add_option_flags, flag_message, flag_name


@dataclass(frozen=True)
class Toy:
    size: int = 3
    kind: str = "a"
    rate: float | None = None
    loud: bool = True
    name: str = ""
    beam: int = field(default=1, metadata={"aliases": ["--b"], "help": "beam width"})
    hidden: tuple[str, ...] = field(default=(), metadata={"flag": False})

    def __post_init__(self):
        if self.size < 0:
            raise ValueError(f"size must be 0 or more, got {self.size}")


def parser_for(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_option_flags(parser, Toy, **kwargs)
    return parser


def test_a_flag_per_field_with_its_type_default_and_help():
    parser = parser_for()
    assert vars(parser.parse_args([])) == {"size": 3, "kind": "a", "rate": None, "loud": True,
                                           "name": "", "beam": 1}
    args = parser.parse_args(["--size", "4", "--rate", "0.5", "--no-loud", "--b", "2"])
    assert (args.size, args.rate, args.loud, args.beam) == (4, 0.5, False, 2)
    text = parser.format_help()
    assert "beam width (default: 1)" in text and "(default: 3)" in text
    assert "--name NAME\n" in text  # an empty default is not shown as "(default: )"
    assert "--hidden" not in text  # metadata "flag": False


def test_only_choices_and_track_given():
    parser = parser_for(only=["size", "kind"], choices={"kind": ("a", "b")},
                        track_given=True)
    assert vars(parser.parse_args([])) == {}  # nothing given, nothing set
    assert vars(parser.parse_args(["--kind", "b"])) == {"kind": "b"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "1"])  # not among `only`
    assert "(default: a)" in parser.format_help()  # the default is still shown


def test_a_dataclass_error_names_the_flag_the_user_typed():
    assert flag_message("size must be 0 or more, got -1", Toy) == \
        "--size must be 0 or more, got -1"
    assert flag_message("beam must be positive", Toy) == "--beam (--b) must be positive"
    assert flag_message("something else", Toy) == "something else"
    args = parser_for().parse_args(["--size", "-1"])
    with pytest.raises(ValueError, match="^--size must be 0 or more"):
        flags.options_from_args(args, Toy)


def test_training_has_no_flag_generator_of_its_own():
    from training import config

    assert config.flag_name is flag_name


@pytest.mark.parametrize("stage", ["TrainConfig", "FinetuneConfig", "ScstConfig"])
def test_every_stage_help_lists_every_flag_of_its_config(stage, capsys):
    from training import config

    cls = getattr(config, stage)
    with pytest.raises(SystemExit):
        config.parse_config(["--help"], cls=cls)
    text = capsys.readouterr().out
    listed = {word.rstrip(",") for word in text.split() if word.startswith("--")}
    expected = {flag_name(f.name) for f in dataclasses.fields(cls) if f.metadata.get("flag", True)}
    model = {flag_name(name) for name in config.MODEL_FLAGS}
    assert expected <= listed
    if stage == "TrainConfig":  # the model's flags too, and only here
        assert model <= listed
    else:
        assert not model & listed


def test_a_model_config_error_names_its_flag(capsys):
    from training.config import parse_config

    with pytest.raises(SystemExit):
        parse_config(["--data", "x.json", "--image-size", "100"])
    assert "error: --image-size must be a positive multiple of 32" in capsys.readouterr().err
    assert parse_config(["--data", "x.json", "--image-size", "448"]).model == \
        ModelConfig(image_size=448)
