"""Horizontal-flip augmentation: the mirrored cache, which images an epoch mirrors, and the
batches that read them with their captions' sides swapped."""
import json

import pytest
import torch
from PIL import Image

from captioner.vocab import SPECIALS, Vocabulary
from training.batches import CachedBatches, Mirroring
from training.data import load_karpathy
from training.features import ensure_cache

from fixture_data import make_dataset

ENCODER, SIZE = "efficientnet_lite0", 64


@pytest.fixture(scope="module")
def mirror_pair(tmp_path_factory):
    """The shapes dataset with photo 1 replaced by photo 0 flipped left to right; photo 0 has
    its shape off to the left, so its mirror image is a different photo."""
    root = tmp_path_factory.mktemp("mirror")
    data = make_dataset(root)
    entries = json.loads(data.read_text())["images"]
    photo = Image.new("RGB", (96, 96), (250, 250, 250))
    photo.paste((220, 30, 30), (4, 20, 40, 76))  # a red block at the left edge
    photo.save(root / "images" / entries[0]["filename"])
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "images" / entries[1]["filename"])
    dataset = load_karpathy(data)
    train = dataset.split("train")
    plain = ensure_cache(dataset, root / "cache", ENCODER, SIZE)
    mirrored = ensure_cache(dataset, root / "cache", ENCODER, SIZE, images=train, mirrored=True)
    return dataset, train, plain, mirrored


def test_the_mirrored_cache_holds_the_flipped_photos(mirror_pair):
    dataset, train, plain, mirrored = mirror_pair
    assert mirrored.folder != plain.folder and mirrored.folder.name.endswith("-mirrored")
    assert sorted(mirrored.index) == sorted(r.path for r in train)  # training photos only
    first, second = train[0].path, train[1].path
    flipped = mirrored.batch([mirrored.index[first]])
    assert torch.allclose(flipped, plain.batch([plain.index[second]]), atol=0.05)
    assert not torch.allclose(flipped, plain.batch([plain.index[first]]), atol=0.05)
    # The plain cache's manifest has no "mirrored" field, so caches made before it still open.
    assert "mirrored" not in json.loads((plain.folder / "manifest.json").read_text())["key"]
    again = ensure_cache(dataset, plain.folder.parent, ENCODER, SIZE, images=train, mirrored=True)
    assert (again.features[:] == mirrored.features[:]).all()


def test_each_epoch_mirrors_about_half_the_images_the_same_way_every_time(mirror_pair):
    _, _, plain, mirrored = mirror_pair
    mirroring = Mirroring(mirrored, {row: row for row in range(1000)}, (), seed=3)
    first, second = mirroring.chosen(1), mirroring.chosen(2)
    assert first == Mirroring(mirrored, mirroring.rows, (), seed=3).chosen(1)  # as on resume
    assert 400 < len(first) < 600 and 400 < len(second) < 600
    assert first != second
    assert first != Mirroring(mirrored, mirroring.rows, (), seed=4).chosen(1)


def test_batches_read_mirrored_images_with_left_and_right_swapped(mirror_pair):
    _, train, plain, mirrored = mirror_pair
    vocab = Vocabulary(list(SPECIALS) + ["a", "dog", "on", "the", "left", "right"])
    paths = [r.path for r in train]
    mirroring = Mirroring.build(plain, mirrored, paths, vocab, seed=0)
    assert mirroring.swaps == ((vocab.stoi["left"], vocab.stoi["right"]),)
    caption = vocab.encode("a dog on the left right".split())
    rows = [plain.index[p] for p in paths]
    table = [(row, caption) for row in rows for _ in range(2)]  # two captions per image
    epoch = next(e for e in range(10) if 0 < len(mirroring.chosen(e)) < len(rows))
    chosen = mirroring.chosen(epoch)
    batch = CachedBatches(table, [list(range(len(table)))], plain, mirroring, epoch)[0]
    unmirrored = CachedBatches(table, [list(range(len(table)))], plain)[0]
    assert torch.equal(batch.image_of, unmirrored.image_of)
    for k, row in enumerate(rows):
        expected = (mirrored.batch([mirrored.index[paths[k]]]) if row in chosen
                    else plain.batch([row]))
        assert torch.equal(batch.features[k], expected[0])
    for b, image in enumerate(batch.image_of.tolist()):
        words = vocab.decode(batch.captions[b])
        assert words == ("a dog on the right left".split() if rows[image] in chosen
                         else "a dog on the left right".split())
