"""Read a captions file into (image, caption, line) records; every error names file and line.

Three layouts are read, chosen by name (CAPTION_FORMATS) or by the file's suffix:

    csv     a header naming `image` and `caption` columns, then one row per caption
            (an image may have several rows)
    jsonl   one JSON object per line: {"image": ..., "caption": ...} or
            {"image": ..., "captions": [...]}
    flickr  Flickr8k's token file: "name.jpg#0<TAB>caption" per line

Captions that are empty (or only spaces) and rows that do not fit the layout are errors, not
skipped: a hand-written file is short enough to fix, and a silently lost caption is not seen.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Callable, NamedTuple


class ConvertError(ValueError):
    """An input that cannot be converted; the message names the file (and line, when known)."""


class CaptionLine(NamedTuple):
    image: str  # as written in the file: a name relative to the images folder
    caption: str
    line: int  # 1-based line where the record starts


def read_text(path: str | os.PathLike) -> str:
    """The whole file as UTF-8 text (a leading byte-order mark is dropped)."""
    path = Path(path)
    if not path.exists():
        raise ConvertError(f"{path}: file not found")
    if not path.is_file():
        raise ConvertError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConvertError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConvertError(f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start}); save the file as UTF-8") from None


def parse_token_line(line: str) -> tuple[str, int, str] | None:
    """"name.jpg#3<TAB>caption" -> (name, 3, caption); None when the line has no such key."""
    key, tab, caption = line.partition("\t")
    if not tab:  # some copies of the Flickr8k file use a space instead of the tab
        key, _, caption = line.strip().partition(" ")
    name, hash_sign, index = key.strip().rpartition("#")
    if not hash_sign or not index.isdigit() or not name:
        return None
    return name, int(index), caption


def read_csv_captions(path: str | os.PathLike) -> list[CaptionLine]:
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = [field.strip().lower() for field in next(reader)]
    except StopIteration:
        raise ConvertError(f"{path}: the file is empty (expected a header: image,caption)") \
            from None
    except csv.Error as exc:
        raise ConvertError(f"{path}, line 1: malformed CSV ({exc})") from None
    if "image" not in header or "caption" not in header:
        raise ConvertError(f"{path}, line 1: the header must name the columns image and "
                           f"caption (found {','.join(header)})")
    image_at, caption_at = header.index("image"), header.index("caption")
    records = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ConvertError(f"{path}, line {start}: malformed CSV ({exc})") from None
        if row and any(field.strip() for field in row):
            if len(row) != len(header):
                raise ConvertError(f"{path}, line {start}: malformed row: {len(row)} fields "
                                   f"where the header has {len(header)} (quote a caption "
                                   f"that contains a comma)")
            records.append(_record(path, start, row[image_at], row[caption_at]))
        start = reader.line_num + 1
    return records


def read_jsonl_captions(path: str | os.PathLike) -> list[CaptionLine]:
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConvertError(f"{path}, line {number}: malformed row: not valid JSON "
                               f"({exc.msg})") from None
        if not isinstance(entry, dict) or ("caption" in entry) == ("captions" in entry):
            raise ConvertError(f"{path}, line {number}: malformed row: expected an object "
                               'with "image" and either "caption" or "captions"')
        captions = entry["captions"] if "captions" in entry else [entry["caption"]]
        if not isinstance(captions, list) or not captions:
            raise ConvertError(f'{path}, line {number}: malformed row: "captions" must be a '
                               "non-empty list")
        records += [_record(path, number, entry.get("image"), caption) for caption in captions]
    return records


def read_flickr_captions(path: str | os.PathLike) -> list[CaptionLine]:
    """Flickr8k's token layout; the #number only has to be there, order is the line order."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parsed = parse_token_line(line)
        if parsed is None:
            raise ConvertError(f"{path}, line {number}: malformed row: expected "
                               "name.jpg#0<TAB>caption")
        name, _, caption = parsed
        records.append(_record(path, number, name, caption))
    return records


CAPTION_FORMATS: dict[str, Callable[[str | os.PathLike], list[CaptionLine]]] = {
    "csv": read_csv_captions,
    "jsonl": read_jsonl_captions,
    "flickr": read_flickr_captions,
}
SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "flickr"}


def read_caption_file(path: str | os.PathLike, format: str | None = None) -> list[CaptionLine]:
    """Records in file order; format None picks one from the suffix (SUFFIX_FORMATS)."""
    if format is None:
        format = SUFFIX_FORMATS.get(Path(path).suffix.lower())
        if format is None:
            raise ConvertError(f"{path}: cannot tell the captions format from the name; "
                               f"choose one of {', '.join(CAPTION_FORMATS)}")
    if format not in CAPTION_FORMATS:
        raise ConvertError(f"unknown captions format {format!r}; choose one of "
                           f"{', '.join(CAPTION_FORMATS)}")
    return CAPTION_FORMATS[format](path)


def _record(path: str | os.PathLike, line: int, image: object, caption: object) -> CaptionLine:
    if not isinstance(image, str) or not image.strip():
        raise ConvertError(f"{path}, line {line}: malformed row: no image name")
    if not isinstance(caption, str):
        raise ConvertError(f"{path}, line {line}: malformed row: the caption is not text")
    if not caption.strip():
        raise ConvertError(f"{path}, line {line}: empty caption for {image.strip()}")
    return CaptionLine(image.strip(), caption.strip(), line)
