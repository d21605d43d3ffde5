"""Turning whatever a user hands us (path, bytes, file, PIL image) into an upright RGB image.

Every failure becomes an ImageError that names the input and says what is wrong, so the CLI,
the app and the data loaders can report it in one line instead of a traceback.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image]

# Refuse images larger than this before decoding them (a 100000x100000 PNG header would
# otherwise ask for 30 GB). 40 megapixels covers any camera photo.
MAX_PIXELS = 40_000_000
# Refuse files larger than this before reading them.
MAX_FILE_BYTES = 50 * 1024 * 1024


class ImageError(ValueError):
    """An input that cannot be used as a photo. str(error) is a one-line user message."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def source_name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return getattr(source, "name", None) or "<file>"


def load_image(source: ImageSource, name: str | None = None,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, check and normalise one image: EXIF orientation applied, first frame, mode RGB."""
    name = name or source_name(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _open(source, name)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(name, f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(name, f"image is {width}x{height} = {width * height:,} pixels; "
                               f"the limit is {max_pixels:,} pixels (refused before decoding)")
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # animated GIF/WebP: caption the first frame
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(name, f"cannot decode image ({_describe(exc)})") from None


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(name, "no such file")
        if path.is_dir():
            raise ImageError(name, "is a directory, not an image file")
        if not path.is_file():  # a FIFO or device would block or never end
            raise ImageError(name, "is not a regular file")
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ImageError(name, f"file is {size / 2**20:.0f} MB; the limit is "
                                       f"{MAX_FILE_BYTES / 2**20:.0f} MB")
            data = path.read_bytes()
        except PermissionError:
            raise ImageError(name, "permission denied") from None
        except OSError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror or _describe(exc)})") from None
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(MAX_FILE_BYTES + 1)
    if not data:
        raise ImageError(name, "file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(name, f"file is larger than the limit of {MAX_FILE_BYTES / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's bomb warning with a clear message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(name, "not an image file (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]):,} pixels" if found else "too many pixels"
        raise ImageError(name, f"image has {size}; the limit is {MAX_PIXELS:,} pixels "
                               "(refused before decoding)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(name, f"cannot decode image ({_describe(exc)})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit / float greyscale: Pillow's convert("RGB") clips to 255, so rescale ourselves.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
