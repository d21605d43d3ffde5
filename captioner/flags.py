"""Command-line flags generated from an options dataclass: one flag per field (--beam-size),
its default, type and help from the field, so a new option is one field, not one flag per
entry point. Used by the CLI (DecodeOptions), training.evaluate (DecodeOptions) and the
training stages (their config dataclasses and ModelConfig, training.config)."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Collection, Iterable, Mapping, TypeVar

Options = TypeVar("Options")


def add_option_flags(parser: argparse.ArgumentParser, cls: type, defaults: Any = None,
                     title: str | None = None, *, only: Iterable[str] | None = None,
                     choices: Mapping[str, Collection] | None = None,
                     track_given: bool = False) -> None:
    """A flag per field of the dataclass `cls` (of the fields named in `only`, when given),
    except fields whose metadata says "flag": False. Field metadata may give "help",
    "choices" and "aliases" (extra flag names, e.g. ["--beam"]); `choices` gives a field's
    choices by name instead (a registry, read as the parser is built). track_given: a flag
    left out sets nothing (argparse.SUPPRESS), so a flag given is told apart from a default;
    the help still shows the default."""
    defaults = cls() if defaults is None else defaults
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    wanted = None if only is None else set(only)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("flag", True) or (wanted is not None and f.name not in wanted):
            continue
        names = [flag_name(f.name), *f.metadata.get("aliases", ())]
        default = getattr(defaults, f.name)
        kind = _scalar_type(hints[f.name])
        shown = f" (default: {default})" if default != "" else ""  # "": nothing, say nothing
        help_text = f"{f.metadata.get('help', '')}{shown}".strip()
        if track_given:
            default = argparse.SUPPRESS
        if kind is bool:
            group.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default, help=help_text)
        else:
            values = (choices or {}).get(f.name, f.metadata.get("choices"))
            group.add_argument(*names, dest=f.name, type=kind, default=default,
                               choices=values, help=help_text,
                               metavar=None if values else f.name.upper())


def options_from_args(args: argparse.Namespace, cls: type[Options]) -> Options:
    """The dataclass from parsed flags (a field without a flag keeps its default); raises
    ValueError (the dataclass's own check, with the field that starts its message named as
    the flag the user typed: "--beam-size (--beam)")."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                      if hasattr(args, f.name)})
    except ValueError as exc:
        raise ValueError(flag_message(str(exc), cls)) from None


def flag_message(message: str, cls: type) -> str:
    """A dataclass's error message ("beam_size must be ...") with the field that starts it
    named as its flag, and its aliases ("--beam-size (--beam) must be ...")."""
    for f in dataclasses.fields(cls):
        if message.startswith(f.name + " "):
            names = [flag_name(f.name), *f.metadata.get("aliases", ())]
            flags = names[0] + (f" ({', '.join(names[1:])})" if names[1:] else "")
            return flags + message[len(f.name):]
    return message


def positive_int(text: str) -> int:
    """An argparse type for a count that must be 1 or more (--threads)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(hint: Any) -> type:
    """int, float, str or bool from a field's annotation (Optional[X] -> X)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint not in (int, float, str, bool):
        raise TypeError(f"no command-line flag for fields of type {hint!r}")
    return hint
