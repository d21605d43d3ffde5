"""Raw COCO / Flickr8k downloads and your own photos -> Karpathy split JSON, on tiny samples
built in tmp_path."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from training.data import load_karpathy
from captioner.vocab import tokenize
from training.convert import ConvertError, convert_coco, convert_flickr8k, convert_photos, main

REPO = Path(__file__).resolve().parents[1]
PHRASES = ["A dog runs on grass .", "Two kids play in the snow !", "A man rides a red bike",
           "The cat's toy is blue .", "A T-shirt hangs on a line"]


def assert_karpathy(data: dict, name: str, coco: bool = False) -> None:
    """Every field present, ids consecutive in sorted file-name order, tokens = tokenize(raw)."""
    assert set(data) == {"images", "dataset"} and data["dataset"] == name
    images = data["images"]
    assert [im["imgid"] for im in images] == list(range(len(images)))
    order = [(im["filename"], im.get("filepath", "")) for im in images]
    assert order == sorted(order)
    sentids = []
    for image in images:
        expected = {"filename", "imgid", "split", "sentences", "sentids"}
        expected |= {"filepath", "cocoid"} if coco else set()
        assert set(image) == expected
        assert image["split"] in {"train", "restval", "val", "test"}
        assert image["sentences"]
        for sentence in image["sentences"]:
            assert set(sentence) == {"raw", "tokens", "imgid", "sentid"}
            assert sentence["imgid"] == image["imgid"]
            assert sentence["tokens"] == tokenize(sentence["raw"]) != []
        assert image["sentids"] == [s["sentid"] for s in image["sentences"]]
        sentids += image["sentids"]
    assert sentids == list(range(len(sentids)))


def splits_of(data: dict) -> dict[str, str]:
    return {im["filename"]: im["split"] for im in data["images"]}


# ---------------------------------------------------------------------------------------------
# Flickr8k
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def flickr(tmp_path) -> dict[str, Path]:
    """3 train, 2 val, 2 test images with 5 captions each, plus: one image in no list, the
    known bogus "...jpg.1" entry, a caption that tokenizes to nothing, a listed image without
    captions, and one image file missing from the folder."""
    names = {"train": ["1000_a.jpg", "1001_b.jpg", "1002_c.jpg"],
             "val": ["2000_d.jpg", "2001_e.jpg"], "test": ["3000_f.jpg", "3001_g.jpg"]}
    lines = []
    for name in sorted(sum(names.values(), [])) + ["9999_unsplit.jpg",
                                                   "2258277193_586949ec62.jpg.1"]:
        lines += [f"{name}#{i}\t{PHRASES[i]}" for i in range(5)]
    lines.append("1000_a.jpg#5\t... !")  # tokenizes to nothing
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    lists = {}
    for split, listed in names.items():
        lists[split] = tmp_path / f"{split}.txt"
        extra = ["9000268201_993b08cb0e.jpg"] if split == "test" else []  # no captions
        lists[split].write_text("\n".join(listed + extra) + "\n")
    images = tmp_path / "images"
    images.mkdir()
    for name in sum(names.values(), [])[1:]:  # 1000_a.jpg is missing
        (images / name).write_bytes(b"jpeg")
    return {"captions": tmp_path / "Flickr8k.token.txt", **lists, "images": images}


def test_flickr8k_conversion(flickr):
    conversion = convert_flickr8k(flickr["captions"], flickr["train"], flickr["val"],
                                  flickr["test"], images=flickr["images"])
    data = conversion.dataset
    assert_karpathy(data, "flickr8k")
    assert splits_of(data) == {"1000_a.jpg": "train", "1001_b.jpg": "train",
                               "1002_c.jpg": "train", "2000_d.jpg": "val", "2001_e.jpg": "val",
                               "3000_f.jpg": "test", "3001_g.jpg": "test"}
    assert all(len(im["sentences"]) == 5 for im in data["images"])
    first = data["images"][0]["sentences"]
    assert [s["raw"] for s in first] == PHRASES
    assert first[3]["tokens"] == ["the", "cats", "toy", "is", "blue"]
    assert conversion.split_counts() == {"train": 3, "val": 2, "test": 2}
    problems = conversion.report.problems
    assert problems["entries that are not .jpg image names (skipped)"] == [
        "2258277193_586949ec62.jpg.1"]
    assert problems["images in no split list (left out)"] == ["9999_unsplit.jpg"]
    assert problems["captions that tokenize to nothing (dropped)"] == ["1000_a.jpg#5"]
    assert problems["listed images without captions (left out)"] == ["9000268201_993b08cb0e.jpg"]
    assert any(p.startswith("image files missing") and names == ["1000_a.jpg"]
               for p, names in problems.items())
    summary = conversion.summary()
    assert "7 images (train 3, val 2, test 2), 35 captions" in summary
    assert "2258277193_586949ec62.jpg.1" in summary


def test_flickr8k_image_in_two_lists_is_an_error(flickr):
    flickr["val"].write_text("2000_d.jpg\n1001_b.jpg\n")
    with pytest.raises(ConvertError, match="1001_b.jpg is also in the train list"):
        convert_flickr8k(flickr["captions"], flickr["train"], flickr["val"], flickr["test"])


def test_command_line_writes_a_dataset_the_loader_reads(flickr, tmp_path):
    out = tmp_path / "out" / "dataset_flickr8k.json"
    done = subprocess.run(
        [sys.executable, "-m", "training.convert", "flickr8k", "--captions",
         str(flickr["captions"]), "--train", str(flickr["train"]), "--val", str(flickr["val"]),
         "--test", str(flickr["test"]), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "7 images (train 3, val 2, test 2), 35 captions" in done.stderr
    assert "1 entries that are not .jpg image names (skipped)" in done.stderr
    data = json.loads(out.read_text())
    assert_karpathy(data, "flickr8k")
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind
    dataset = load_karpathy(out)
    assert len(dataset.split("train")) == 3 and dataset.images[0].path == "1000_a.jpg"


def test_missing_input_file_is_exit_2_naming_it(flickr, tmp_path, capsys):
    missing = tmp_path / "Flickr_8k.devImages.txt"
    out = tmp_path / "out.json"
    code = main(["flickr8k", "--captions", str(flickr["captions"]), "--train",
                 str(flickr["train"]), "--val", str(missing), "--test", str(flickr["test"]),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.strip() == f"error: {missing}: file not found"


def test_unknown_flag_and_missing_command_are_errors(flickr, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["flickr8k", "--captions", str(flickr["captions"]), "--train", "a", "--val", "b",
              "--test", "c", "--out", "d", "--bogus"])
    assert exit_info.value.code == 2 and "--bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])


def test_out_may_not_overwrite_an_input(flickr, capsys):
    code = main(["flickr8k", "--captions", str(flickr["captions"]), "--train",
                 str(flickr["train"]), "--val", str(flickr["val"]), "--test",
                 str(flickr["test"]), "--out", str(flickr["train"])])
    assert code == 2 and "overwrite an input" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------

def coco_file(path: Path, folder: str, ids: list[int], first_annotation: int) -> Path:
    images = [{"id": i, "file_name": f"COCO_{folder}_{i:012d}.jpg", "width": 640,
               "height": 480} for i in ids]
    annotations, next_id = [], first_annotation
    for i in ids[:-1]:  # the last image has no captions
        for phrase in reversed(PHRASES):  # written out of order: output is in annotation-id order
            annotations.append({"image_id": i, "id": next_id, "caption": phrase})
            next_id -= 1
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}))
    return path


@pytest.fixture
def coco(tmp_path) -> dict[str, Path]:
    """train2014: 3 images with 5 captions + 1 without; val2014: 6 + 1 without."""
    return {"train": coco_file(tmp_path / "captions_train2014.json", "train2014",
                               [9, 25, 30, 31], 1000),
            "val": coco_file(tmp_path / "captions_val2014.json", "val2014",
                             [42, 73, 74, 133, 136, 139, 140], 2000)}


def test_coco_conversion_with_a_seeded_split(coco):
    conversion = convert_coco(coco["train"], coco["val"], val_size=2, test_size=2)
    data = conversion.dataset
    assert_karpathy(data, "coco", coco=True)
    assert conversion.split_counts() == {"train": 3, "restval": 2, "val": 2, "test": 2}
    by_id = {im["cocoid"]: im for im in data["images"]}
    assert sorted(by_id) == [9, 25, 30, 42, 73, 74, 133, 136, 139]
    assert by_id[9]["filepath"] == "train2014" and by_id[42]["filepath"] == "val2014"
    assert by_id[9]["filename"] == "COCO_train2014_000000000009.jpg"
    assert all(im["split"] == "train" for im in data["images"] if im["filepath"] == "train2014")
    assert [s["raw"] for s in by_id[9]["sentences"]] == PHRASES
    assert conversion.report.problems["train2014 images without captions (left out)"] == [
        "COCO_train2014_000000000031.jpg"]
    again = convert_coco(coco["train"], coco["val"], val_size=2, test_size=2)
    assert again.dataset == data  # deterministic


def test_coco_from_one_captions_file_cut_into_val_test_and_restval(coco, tmp_path):
    conversion = convert_coco(None, coco["val"], val_size=1, test_size=2, seed=5)
    assert conversion.split_counts() == {"restval": 3, "val": 1, "test": 2}
    assert {im["filepath"] for im in conversion.dataset["images"]} == {"val2014"}
    assert convert_coco(None, coco["val"], val_size=1, test_size=2, seed=5).dataset == \
        conversion.dataset  # seeded
    out = tmp_path / "one.json"
    assert main(["coco", "--val-json", str(coco["val"]), "--val-size", "1", "--test-size", "2",
                 "--seed", "5", "--out", str(out)]) == 0
    data = load_karpathy(out, tmp_path)
    assert (len(data.split("train")), len(data.split("val")), len(data.split("test"))) == \
        (3, 1, 2)  # restval is trained on


def test_coco_with_a_karpathy_split_file(coco, tmp_path):
    split_file = tmp_path / "dataset_coco.json"
    split_file.write_text(json.dumps({"dataset": "coco", "images": [
        {"filename": "COCO_val2014_000000000042.jpg", "cocoid": 42, "split": "test"},
        {"filename": "COCO_val2014_000000000073.jpg", "split": "val"},  # by file name
        {"filename": "COCO_val2014_000000000074.jpg", "cocoid": 74, "split": "restval"},
        {"filename": "COCO_train2014_000000000009.jpg", "cocoid": 9, "split": "train"},
        {"filename": "COCO_train2014_000000000025.jpg", "cocoid": 25, "split": "train"},
        {"filename": "COCO_train2014_000000000030.jpg", "cocoid": 30, "split": "val"},
        {"filename": "COCO_val2014_000000999999.jpg", "cocoid": 999999, "split": "test"},
    ]}))
    conversion = convert_coco(coco["train"], coco["val"], karpathy_split=split_file)
    assert_karpathy(conversion.dataset, "coco", coco=True)
    assert {im["cocoid"]: im["split"] for im in conversion.dataset["images"]} == {
        42: "test", 73: "val", 74: "restval", 9: "train", 25: "train", 30: "val"}
    problems = conversion.report.problems
    assert len(problems["images not in the split file (left out)"]) == 3  # 133, 136, 139
    assert problems["split-file images not in the caption files (ignored)"] == [
        "COCO_val2014_000000999999.jpg"]


def test_coco_command_line_errors(coco, tmp_path, capsys):
    out = tmp_path / "dataset_coco.json"
    args = ["coco", "--train-json", str(coco["train"]), "--val-json", str(coco["val"]),
            "--out", str(out)]
    assert main(args) == 2  # 6 val2014 images cannot give 5000 + 5000
    assert "fewer than --val-size 5000 + --test-size 5000" in capsys.readouterr().err
    assert main(args + ["--karpathy-split", str(tmp_path / "nope.json")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.json'}: file not found"
    assert main(args + ["--val-size", "1", "--test-size", "1"]) == 0
    assert_karpathy(json.loads(out.read_text()), "coco", coco=True)
    assert "9 images (train 3, restval 4, val 1, test 1)" in capsys.readouterr().err


def test_coco_image_check_uses_the_filepath_folders(coco, tmp_path):
    for folder, cocoid in (("train2014", 9), ("val2014", 42)):
        (tmp_path / "coco" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "coco" / folder / f"COCO_{folder}_{cocoid:012d}.jpg").write_bytes(b"jpeg")
    conversion = convert_coco(coco["train"], coco["val"], images=tmp_path / "coco",
                              val_size=2, test_size=2)
    [(problem, missing)] = [(p, n) for p, n in conversion.report.problems.items()
                            if p.startswith("image files missing")]
    assert len(missing) == 7 and "train2014/COCO_train2014_000000000025.jpg" in missing
    with pytest.raises(ConvertError, match="image folder not found"):
        convert_coco(coco["train"], coco["val"], images=tmp_path / "nowhere", val_size=2,
                     test_size=2)


# ---------------------------------------------------------------------------------------------
# your own photos
# ---------------------------------------------------------------------------------------------

PHOTOS = ["beach.jpg", "cat.png", "dog.jpg", "hike.jpeg", "lake.jpg", "park.jpg"]


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    """Six tiny real images, plus one photo no captions file mentions."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index, name in enumerate(PHOTOS + ["uncaptioned.jpg"]):
        Image.new("RGB", (8, 6), (40 * index, 80, 120)).save(folder / name)
    return folder


def test_photos_from_csv_with_several_rows_per_photo(photo_dir, tmp_path):
    rows = ["image,caption"]
    for index, name in enumerate(PHOTOS):
        rows += [f"{name},{PHRASES[index % 5]}", f'{name},"{PHRASES[(index + 1) % 5]}, again"']
    rows.append(f"{PHOTOS[0]},{PHRASES[0]}")  # the same caption twice: kept once, reported
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    conversion = convert_photos(tmp_path / "captions.csv", photo_dir, val_fraction=0.2,
                                test_fraction=0.2, seed=1)
    data = conversion.dataset
    assert_karpathy(data, "photos")
    assert sorted(splits_of(data)) == PHOTOS
    assert conversion.split_counts() == {"train": 4, "val": 1, "test": 1}
    beach = data["images"][0]
    assert [s["raw"] for s in beach["sentences"]] == [PHRASES[0], f"{PHRASES[1]}, again"]
    problems = conversion.report.problems
    assert problems["duplicate captions (kept once)"] == ["beach.jpg (line 14)"]
    assert problems["photos in the folder without captions (left out)"] == ["uncaptioned.jpg"]
    assert "1 duplicate captions (kept once)" in conversion.summary()
    # the split depends on the seed only, not on the order of the file's rows
    (tmp_path / "reversed.csv").write_text("\n".join(rows[:1] + rows[:0:-1]) + "\n")
    again = convert_photos(tmp_path / "reversed.csv", photo_dir, val_fraction=0.2,
                           test_fraction=0.2, seed=1)
    assert splits_of(again.dataset) == splits_of(data)
    other_seeds = [splits_of(convert_photos(tmp_path / "captions.csv", photo_dir, None, 0.2,
                                            0.2, seed).dataset) for seed in range(2, 6)]
    assert any(splits != splits_of(data) for splits in other_seeds)


def test_photos_take_their_splits_from_an_earlier_dataset(photo_dir, tmp_path, capsys):
    rows = ["image,caption"] + [f"{name},{PHRASES[0]}" for name in PHOTOS]
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"dataset": "coco", "images": [
        {"filename": name, "filepath": "val2014", "split": split}
        for name, split in zip(PHOTOS[1:] + ["elsewhere.jpg"],
                               ["test", "val", "restval", "train", "test", "val"])]}))
    conversion = convert_photos(tmp_path / "captions.csv", photo_dir, split_from=earlier)
    assert splits_of(conversion.dataset) == {"cat.png": "test", "dog.jpg": "val",
                                             "hike.jpeg": "restval", "lake.jpg": "train",
                                             "park.jpg": "test"}
    assert conversion.report.problems["photos not in earlier.json (left out)"] == ["beach.jpg"]
    out = tmp_path / "photos.json"
    assert main(["photos", "--images", str(photo_dir), "--captions",
                 str(tmp_path / "captions.csv"), "--split-from", str(earlier), "--out",
                 str(out)]) == 0
    assert splits_of(json.loads(out.read_text())) == splits_of(conversion.dataset)
    assert main(["photos", "--images", str(photo_dir), "--captions",
                 str(tmp_path / "captions.csv"), "--split-from", str(tmp_path / "none.json"),
                 "--out", str(out)]) == 2
    assert "none.json: file not found" in capsys.readouterr().err


def test_photos_from_json_lines(photo_dir, tmp_path):
    lines = [json.dumps({"image": PHOTOS[0], "caption": PHRASES[0]}),
             "",
             json.dumps({"image": PHOTOS[1], "captions": PHRASES[1:4]}),
             json.dumps({"image": PHOTOS[2], "captions": ["Ein Hund im Schnee ."]})]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    conversion = convert_photos(tmp_path / "captions.jsonl", photo_dir, val_fraction=0,
                                test_fraction=0.3, name="holiday")
    assert_karpathy(conversion.dataset, "holiday")
    assert conversion.split_counts() == {"train": 2, "test": 1}
    by_name = {im["filename"]: im for im in conversion.dataset["images"]}
    assert [s["raw"] for s in by_name["cat.png"]["sentences"]] == PHRASES[1:4]
    assert by_name["dog.jpg"]["sentences"][0]["tokens"] == tokenize("Ein Hund im Schnee .")


def test_photos_from_a_flickr_style_token_file(photo_dir, tmp_path):
    lines = [f"{name}#{i}\t{PHRASES[i]}" for name in PHOTOS[:4] for i in range(2)]
    (tmp_path / "my.token.txt").write_text("\n".join(lines) + "\n")
    conversion = convert_photos(tmp_path / "my.token.txt", photo_dir)  # flickr, by suffix
    assert_karpathy(conversion.dataset, "photos")
    assert conversion.split_counts() == {"train": 2, "val": 1, "test": 1}
    assert all([s["raw"] for s in im["sentences"]] == PHRASES[:2]
               for im in conversion.dataset["images"])


def test_photos_command_line_writes_a_dataset_the_loader_reads(photo_dir, tmp_path, capsys):
    captions = tmp_path / "captions.txt"  # a .txt that is CSV: --format decides
    captions.write_text("image,caption\n" + "".join(f"{n},{PHRASES[0]}\n{n},{PHRASES[0]}\n"
                                                    for n in PHOTOS))
    out = tmp_path / "dataset_photos.json"
    assert main(["photos", "--images", str(photo_dir), "--captions", str(captions), "--format",
                 "csv", "--val-fraction", "0.2", "--test-fraction", "0", "--seed", "7",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "photos: 6 images (train 5, val 1), 6 captions" in err
    assert "6 duplicate captions (kept once)" in err
    dataset = load_karpathy(out)  # finds <json dir>/images
    assert len(dataset.split("train")) == 5 and dataset.image_path(dataset.images[0]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captions.txt", "dataset_photos.json",
                                                          "images"]


def photo_error(tmp_path, photo_dir, name: str, content: str | bytes, capsys,
                **flags: str) -> str:
    """Run the command on a bad captions file: exit 2, the old output untouched, no temp file
    left; returns the error line."""
    captions = tmp_path / name
    if isinstance(content, bytes):
        captions.write_bytes(content)
    else:
        captions.write_text(content, encoding="utf-8")
    out = tmp_path / "out" / "dataset_photos.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text("previous")
    extra = [item for flag, value in flags.items() for item in (f"--{flag}", value)]
    code = main(["photos", "--images", str(photo_dir), "--captions", str(captions), *extra,
                 "--out", str(out)])
    assert code == 2
    assert out.read_text() == "previous" and [p.name for p in out.parent.iterdir()] == [out.name]
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {captions}")
    return err


def test_missing_photo_names_the_line(photo_dir, tmp_path, capsys):
    err = photo_error(tmp_path, photo_dir, "captions.csv",
                      f"image,caption\ncat.png,{PHRASES[0]}\nnope.jpg,{PHRASES[1]}\n", capsys)
    assert err == f"error: {tmp_path / 'captions.csv'}, line 3: photo nope.jpg not found in " \
                  f"{photo_dir}"


def test_a_photo_outside_the_folder_or_not_an_image_names_the_line(photo_dir, tmp_path, capsys):
    (photo_dir.parent / "secret.jpg").write_bytes(b"x")
    err = photo_error(tmp_path, photo_dir, "captions.jsonl",
                      json.dumps({"image": "../secret.jpg", "caption": "a b"}), capsys)
    assert "captions.jsonl, line 1: '../secret.jpg': name a photo directly in" in err
    (photo_dir / "notes.jpg").write_text("not a picture")
    err = photo_error(tmp_path, photo_dir, "captions.csv",
                      "image,caption\ncat.png,a cat\n\nnotes.jpg,a note\n", capsys)
    assert "captions.csv, line 4: photo notes.jpg is not a readable image" in err


def test_empty_caption_names_the_line(photo_dir, tmp_path, capsys):
    err = photo_error(tmp_path, photo_dir, "captions.csv",
                      "image,caption\ncat.png,a cat\ndog.jpg,  \n", capsys)
    assert err == f"error: {tmp_path / 'captions.csv'}, line 3: empty caption for dog.jpg"
    err = photo_error(tmp_path, photo_dir, "captions.jsonl",
                      '{"image": "cat.png", "captions": ["a cat", ""]}\n', capsys)
    assert err.endswith("captions.jsonl, line 1: empty caption for cat.png")


def test_non_utf8_text_names_the_line(photo_dir, tmp_path, capsys):
    content = "image,caption\ncat.png,a cat\n".encode() + "dog.jpg,a caf\xe9\n".encode("latin-1")
    err = photo_error(tmp_path, photo_dir, "captions.csv", content, capsys)
    assert "captions.csv, line 3: not UTF-8 text" in err


@pytest.mark.parametrize("name, content, line", [
    ("captions.csv", "image,caption\ncat.png,a cat,extra\n", 2),
    ("captions.csv", "picture,text\ncat.png,a cat\n", 1),
    ("captions.jsonl", '{"image": "cat.png", "caption": "a cat"}\n{"image": "dog.jpg"\n', 2),
    ("captions.jsonl", '{"image": "cat.png", "caption": "a"}\n\n["dog.jpg", "a dog"]\n', 3),
    ("captions.txt", "cat.png#0\ta cat\ndog.jpg a dog without a number\n", 2),
])
def test_malformed_row_names_the_line(photo_dir, tmp_path, capsys, name, content, line):
    err = photo_error(tmp_path, photo_dir, name, content, capsys)
    assert err.startswith(f"error: {tmp_path / name}, line {line}: ")
    assert "malformed row" in err or "header must name" in err


def test_unreadable_captions_file_is_named(photo_dir, tmp_path, capsys, monkeypatch):
    captions = tmp_path / "captions.csv"
    captions.write_text("image,caption\ncat.png,a cat\n")

    def refuse(self):  # chmod 000 does not stop root, so the refusal is simulated
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConvertError, match=r"captions.csv: cannot be read \(Permission denied"):
        convert_photos(captions, photo_dir)
    monkeypatch.undo()
    with pytest.raises(ConvertError, match="images: not a regular file"):
        convert_photos(photo_dir, photo_dir, format="csv")  # a folder given as the file
    with pytest.raises(ConvertError, match="cannot tell the captions format"):
        convert_photos(tmp_path / "captions.tsv", photo_dir)


def test_split_fractions_are_checked(photo_dir, tmp_path):
    captions = tmp_path / "captions.csv"
    captions.write_text("image,caption\ncat.png,a cat\ndog.jpg,a dog\n")
    with pytest.raises(ConvertError, match="--val-fraction must be at least 0 and below 1"):
        convert_photos(captions, photo_dir, val_fraction=1.5)
    with pytest.raises(ConvertError, match="must leave images to train on"):
        convert_photos(captions, photo_dir, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConvertError, match="2 photos are too few for 1 val and 1 test"):
        convert_photos(captions, photo_dir)


@pytest.mark.parametrize("source, needs", [
    ("coco", ["captions_train2014.json", "captions_val2014.json", "not read"]),
    ("flickr8k", ["Flickr8k.token.txt", "Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt",
                  "Flickr_8k.testImages.txt", "not read"]),
    ("photos", ["folder of your photos", "captions file", "CSV", "JSON lines"]),
])
def test_each_sources_help_says_what_it_needs(source, needs, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([source, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("Needs ") == 1
    for need in needs:
        assert need in text, need


def test_the_help_says_when_training_needs_the_photos(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "to build the feature cache" in text and "need only the JSON" in text
