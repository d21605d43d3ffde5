"""Command-line flags generated from an options dataclass: one flag per field (--beam-size),
its default, type and help from the field, so a new option is one field, not one flag per
entry point. Used by the CLI and training.evaluate."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

Options = TypeVar("Options")


def add_option_flags(parser: argparse.ArgumentParser, cls: type, defaults: Any = None,
                     title: str | None = None) -> None:
    """A flag per field of the dataclass `cls`; field metadata may give "help", "choices" and
    "aliases" (extra flag names, e.g. ["--beam"])."""
    defaults = cls() if defaults is None else defaults
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names = [flag_name(f.name), *f.metadata.get("aliases", ())]
        default = getattr(defaults, f.name)
        kind = _scalar_type(hints[f.name])
        help_text = f"{f.metadata.get('help', '')} (default: {default})".strip()
        if kind is bool:
            group.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default, help=help_text)
        else:
            group.add_argument(*names, dest=f.name, type=kind, default=default,
                               choices=f.metadata.get("choices"), help=help_text,
                               metavar=None if f.metadata.get("choices") else f.name.upper())


def options_from_args(args: argparse.Namespace, cls: type[Options]) -> Options:
    """The dataclass from parsed flags; raises ValueError (the dataclass's own check, with the
    field that starts its message named as the flag the user typed: "--beam-size (--beam)")."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    except ValueError as exc:
        message = str(exc)
        for f in dataclasses.fields(cls):
            if message.startswith(f.name + " "):
                names = [flag_name(f.name), *f.metadata.get("aliases", ())]
                flags = names[0] + (f" ({', '.join(names[1:])})" if names[1:] else "")
                raise ValueError(flags + message[len(f.name):]) from None
        raise


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
