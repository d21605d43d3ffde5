"""python -m captioner caption: good files are captioned, bad ones get one line and exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import photo, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "captioner", "caption", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    from captioner import Vocabulary

    from conftest import WORDS
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt",
                            Vocabulary.build(WORDS, min_count=1))


@pytest.mark.slow
def test_json_output_with_bad_files_in_the_same_call(tmp_path, cli_checkpoint):
    good = tmp_path / "good.jpg"
    photo().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00garbage")
    result = run_cli(good, bad, tmp_path / "missing.png", "--checkpoint", cli_checkpoint,
                     "--json", "--beam", "2", "--n-best", "2")
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert "bad.jpg: not an image file" in errors[0]
    assert "missing.png: no such file" in errors[1]
    # every photo named has its entry, in order; a failed one says what went wrong
    entry, bad_entry, missing_entry = json.loads(result.stdout)
    assert entry["image"] == str(good) and "error" not in entry
    assert len(entry["words"]) == len(entry["attention"])
    assert len(entry["alternatives"]) == 2
    assert bad_entry == {"image": str(bad), "error": "not an image file (unrecognised format)"}
    assert missing_entry == {"image": str(tmp_path / "missing.png"), "error": "no such file"}


@pytest.mark.slow
def test_plain_output_and_overlay_pngs(tmp_path, cli_checkpoint):
    images = []
    for i in range(2):
        images.append(tmp_path / f"p{i}.png")
        photo(seed=i).save(images[-1])
    out = tmp_path / "overlays"
    result = run_cli(*images, "--checkpoint", cli_checkpoint, "--overlay-dir", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]
    for image in images:
        sheet = Image.open(out / f"{image.name}.attention.png")
        assert sheet.width > 256 and sheet.height > 100


@pytest.mark.slow
def test_bad_checkpoint_and_bad_options(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nope")
    image = tmp_path / "p.png"
    photo().save(image)
    result = run_cli(image, "--checkpoint", junk)
    assert result.returncode == 2 and "junk.pt" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(image, "--beam", "0", "--checkpoint", junk)
    assert result.returncode == 2 and "--beam" in result.stderr


def test_an_unknown_checkpoint_gets_one_line_naming_the_shipped_models(tmp_path, capsys):
    from captioner.cli import main

    image = tmp_path / "p.png"
    photo().save(image)
    assert main(["caption", str(image), "--checkpoint", "medium"]) == 2
    assert capsys.readouterr().err == (
        "error: medium: no such checkpoint file, nor a shipped model (soft, hard)\n")


@pytest.mark.slow
def test_checkpoint_takes_a_shipped_model_by_name(tmp_path):
    image = tmp_path / "p.png"
    photo().save(image)
    by_name = run_cli(image, "--checkpoint", "hard", "--json")
    assert by_name.returncode == 0, by_name.stderr
    by_model = run_cli(image, "--model", "hard", "--json")
    assert json.loads(by_name.stdout)[0]["caption"] == json.loads(by_model.stdout)[0]["caption"]


@pytest.mark.slow
def test_photos_are_captioned_many_per_call_and_printed_in_the_order_named(
        tmp_path, cli_checkpoint, monkeypatch, capsys):
    from captioner import Captioner, cli

    calls = []
    caption = Captioner.caption

    def counted(self, images, options=None, **changes):
        calls.append(len(images))
        return caption(self, images, options, **changes)
    monkeypatch.setattr(Captioner, "caption", counted)
    monkeypatch.setattr(cli, "PHOTOS_PER_CALL", 2)
    names = [tmp_path / f"p{i}.png" for i in range(4)]
    for i, name in enumerate(names):
        photo(seed=i).save(name)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00garbage")
    options = ["--beam", "2", "--fusion-weight", "0"]
    named = [names[0], names[1], bad, names[2], names[3]]
    assert cli.main(["caption", *map(str, named), "--checkpoint", str(cli_checkpoint),
                     *options]) == 2
    assert calls == [2, 1, 1]  # chunks of two names: p0 p1 | bad p2 | p3
    out = capsys.readouterr()
    assert "bad.jpg" in out.err
    lines = out.out.strip().splitlines()
    captioner = Captioner.from_checkpoint(cli_checkpoint)
    alone = [captioner.caption(str(name), beam_size=2, fusion_weight=0.0)[0].text for name in names]
    assert lines == [f"{name}\t{text}" for name, text in zip(names, alone)]


def test_decoding_flags_default_to_the_library_defaults():
    """The CLI decodes as the app, the Python API and evaluate do unless told otherwise."""
    from captioner.cli import build_parser
    from captioner.options import DecodeOptions
    from captioner.flags import options_from_args

    args = build_parser().parse_args(["caption", "x.jpg"])
    assert options_from_args(args, DecodeOptions) == DecodeOptions()
    assert build_parser().parse_args(["caption", "x.jpg", "--no-block-repeats"]).block_repeats is False
    changed = build_parser().parse_args(["caption", "x.jpg", "--beam", "5", "--n-best", "2",
                                         "--hard-mode", "sample", "--repeat-penalty", "1.5"])
    assert options_from_args(changed, DecodeOptions) == DecodeOptions(
        beam_size=5, n_best=2, hard_mode="sample", repeat_penalty=1.5)


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_threads_below_one_are_refused(threads, capsys):
    from captioner.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["caption", "x.jpg", "--threads", threads])
    assert exit_.value.code == 2
    assert f"argument --threads: must be at least 1 (got {threads})" in capsys.readouterr().err
    assert build_parser().parse_args(["caption", "x.jpg", "--threads", "1"]).threads == 1


def test_a_hard_mode_asked_of_a_soft_model_is_refused_before_any_photo(tmp_path, cli_checkpoint,
                                                                       capsys):
    """--hard-mode with a model without hard attention: one line naming the flag, exit 2 (it
    used to be ignored)."""
    from captioner import cli

    assert cli.main(["caption", str(tmp_path / "never-read.jpg"), "--checkpoint",
                     str(cli_checkpoint), "--hard-mode", "argmax"]) == 2
    err = capsys.readouterr().err
    assert "--hard-mode applies to hard attention only" in err and "never-read" not in err
