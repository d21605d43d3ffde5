"""Every kind of input a user may hand us becomes an upright RGB image or a clear ImageError."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from captioner.images import MAX_PIXELS, ImageError, load_image

from conftest import photo


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I", "F", "YCbCr"])
def test_any_mode_becomes_rgb(mode):
    image = photo().convert(mode) if mode not in ("I", "F") else photo().convert("L").convert(mode)
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (160, 120)


def test_cmyk_jpeg():
    out = load_image(_bytes(photo().convert("CMYK"), "JPEG"))
    assert out.mode == "RGB" and out.size == (160, 120)


def test_sixteen_bit_png_keeps_its_contrast():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    data = _bytes(Image.fromarray(ramp), "PNG")
    out = np.asarray(load_image(data))
    assert out.min() <= 2 and out.max() >= 250  # not clipped to white


def test_palette_png_with_transparency_composited_on_white():
    image = Image.new("P", (20, 20), 0)
    image.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    image.info["transparency"] = 0
    out = load_image(_bytes(image, "PNG", transparency=0))
    assert out.getpixel((5, 5)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    image = photo(200, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(_bytes(image, "JPEG", exif=exif))
    assert out.size == (100, 200)


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (30, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    out = load_image(buffer.getvalue())
    r, g, b = out.getpixel((10, 10))
    assert r > 200 and g < 50


@pytest.mark.parametrize("size", [(1, 1), (5000, 20)])
def test_extreme_shapes(size):
    assert load_image(Image.new("RGB", size, "gray")).size == size


def test_empty_random_and_truncated_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg: file is empty"):
        load_image(empty)
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(os.urandom(2000))
    with pytest.raises(ImageError, match="noise.jpg: not an image file"):
        load_image(noise)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(_bytes(photo(400, 300), "JPEG")[:1500])
    with pytest.raises(ImageError, match="cut.jpg: cannot decode image"):
        load_image(truncated)


def test_decompression_bomb_refused_before_decoding():
    # A real PNG header claiming 100000 x 100000 pixels, with almost no data behind it.
    import struct
    import zlib

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match=f"limit is {MAX_PIXELS:,} pixels"):
        load_image(data, name="bomb.png")


def test_directory_missing_and_unreadable(tmp_path):
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    locked = tmp_path / "locked.png"
    photo().save(locked)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user who can read any file (root)")
        with pytest.raises(ImageError, match="permission denied"):
            load_image(locked)
    finally:
        locked.chmod(0o644)


def test_special_files_never_hang(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="pipe.jpg: is not a regular file"):
        load_image(fifo)


def test_read_error_is_reported(monkeypatch, tmp_path):
    # Root can read any file, so simulate an I/O error (a failing disk, a revoked share).
    path = tmp_path / "flaky.png"
    photo().save(path)

    def failing_read(self):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(type(path), "read_bytes", failing_read)
    with pytest.raises(ImageError, match="flaky.png: cannot read file \\(Input/output error"):
        load_image(path)


def test_non_utf8_file_name(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.png"
    photo().save(name.decode("utf-8", "surrogateescape"))
    assert load_image(name.decode("utf-8", "surrogateescape")).size == (160, 120)
