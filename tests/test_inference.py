"""The Captioner facade: any image source in, named Caption results out."""
import io
import threading

import numpy as np
import pytest
import torch

from captioner import Captioner, CheckpointError, ImageError
from captioner.search import search
from captioner.options import DEFAULT_OPTIONS
from conftest import photo


@pytest.fixture
def captioner(checkpoint_path):
    return Captioner.from_checkpoint(checkpoint_path)


def test_caption_has_words_scores_and_one_normalised_map_per_word(captioner):
    [caption] = captioner.caption(photo(), beam_size=3, n_best=3)
    assert len(caption.words) >= 1
    grid = captioner.config.image_size // 32
    assert caption.alphas.shape == (len(caption.words), grid, grid)
    assert np.allclose(caption.alphas.sum(axis=(1, 2)), 1.0, atol=1e-4)
    assert [a.words for a in caption.alternatives][0] == caption.words
    assert len(caption.alternatives) == 3
    assert caption.image_size == (160, 120)
    assert caption.timing.encoder_ms > 0 and caption.timing.decoder_ms > 0
    assert caption.text == " ".join(caption.words)
    as_dict = caption.to_dict()
    assert as_dict["grid"] == [grid, grid] and len(as_dict["attention"]) == len(caption.words)


def test_paths_bytes_files_and_pil_images_give_the_same_caption(captioner, tmp_path):
    image = photo(seed=3)
    path = tmp_path / "p.png"
    image.save(path)
    data = path.read_bytes()
    results = captioner.caption([image, path, str(path), data, io.BytesIO(data)])
    assert len({tuple(c.words) for c in results}) == 1


@pytest.mark.slow
def test_batch_equals_one_by_one(captioner):
    images = [photo(seed=s) for s in range(4)]
    batched = captioner.caption(images, beam_size=3)
    single = [captioner.caption(image, beam_size=3)[0] for image in images]
    assert [c.words for c in batched] == [c.words for c in single]


def test_beam_one_gives_what_the_search_gives(captioner):
    """caption(beam_size=1) is the search with a beam of one: its words and log-probability
    are those of the decoder's own search."""
    image = photo(seed=5)
    shortcut = captioner.caption(image, beam_size=1, grounding=False)[0]
    with torch.inference_mode():
        features = captioner.encoder(captioner.preprocessing.batch([image])).features
        [[beam]] = search(captioner.decoding.decoder_for(DEFAULT_OPTIONS), features, beam_size=1,
                          content_words=captioner.decoding.content_words)
    assert shortcut.words == captioner.vocab.decode(beam.tokens)
    assert shortcut.log_prob == pytest.approx(beam.log_prob, abs=1e-4)


def test_inference_does_not_change_the_model(captioner):
    state = {k: v.clone() for k, v in captioner.decoder.state_dict().items()}
    first = captioner.caption(photo(seed=1))[0].words
    assert captioner.caption(photo(seed=1))[0].words == first
    assert not captioner.decoder.training and not captioner.encoder.training
    assert all(torch.equal(state[k], v) for k, v in captioner.decoder.state_dict().items())


@pytest.mark.slow
def test_concurrent_callers_get_the_same_results_as_sequential(captioner):
    images = [photo(seed=s) for s in range(8)]
    expected = [captioner.caption(image, beam_size=3)[0].words for image in images]
    results = [None] * 8

    def work(i):
        results[i] = captioner.caption(images[i], beam_size=3)[0].words
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_bad_image_raises_image_error_naming_it(captioner, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="bad.jpg: not an image file"):
        captioner.caption(bad)


def test_no_photos_is_a_clear_error(captioner):
    with pytest.raises(ValueError, match="no photos to caption"):
        captioner.caption([])


def test_photos_are_encoded_a_few_at_a_time_with_the_same_features(captioner):
    from captioner.inference import ENCODER_BATCH
    photos = [photo(seed=s) for s in range(ENCODER_BATCH + 2)]  # two calls of the encoder
    batches = []
    forward = captioner.encoder.forward

    def counted(pixels):
        batches.append(len(pixels))
        return forward(pixels)
    captioner.encoder.forward = counted  # the instance's attribute hides the class's method
    try:
        together = captioner.encode(photos)
    finally:
        del captioner.encoder.forward
    assert batches == [ENCODER_BATCH, 2]
    assert together.features.shape[0] == len(photos)
    for i, one in enumerate(photos):
        alone = captioner.encode([one]).features[0]
        assert torch.allclose(together.features[i], alone, atol=1e-4)


def test_invalid_max_length(captioner):
    with pytest.raises(ValueError, match="max_length"):
        captioner.caption(photo(), max_length=0)


def test_missing_default_model_message(monkeypatch, tmp_path):
    import captioner.inference as inference

    monkeypatch.setitem(inference.DEFAULT_CHECKPOINTS, "soft", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="absent.pt"):
        Captioner.from_checkpoint()


def test_a_checkpoint_is_a_path_or_a_shipped_model_name(tmp_path, monkeypatch):
    """What --checkpoint / --init take everywhere: a file, or "soft" / "hard"."""
    from pathlib import Path

    from captioner.inference import DEFAULT_CHECKPOINTS, resolve_checkpoint

    assert resolve_checkpoint(None) == resolve_checkpoint("soft") == DEFAULT_CHECKPOINTS["soft"]
    assert resolve_checkpoint("hard") == DEFAULT_CHECKPOINTS["hard"]
    own = tmp_path / "model.pt"
    own.write_bytes(b"not read here")
    assert resolve_checkpoint(own) == resolve_checkpoint(str(own)) == own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "soft").mkdir()  # a folder of that name does not hide the shipped model
    assert resolve_checkpoint("soft") == DEFAULT_CHECKPOINTS["soft"]
    (tmp_path / "hard").write_bytes(b"")  # a file does: the user named it
    assert resolve_checkpoint("hard") == Path("hard")
    with pytest.raises(CheckpointError) as error:
        resolve_checkpoint("medium")
    assert str(error.value) == "medium: no such checkpoint file, nor a shipped model (soft, hard)"
    monkeypatch.setitem(DEFAULT_CHECKPOINTS, "soft", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="absent.pt: the shipped soft model is not installed"):
        resolve_checkpoint("soft")


def test_exif_rotated_photo_is_captioned_upright(captioner):
    from PIL import Image

    image = photo(200, 100, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    rotated = captioner.caption(buffer.getvalue())[0]
    # the same decoded pixels, turned by hand and stripped of their EXIF
    stored = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    upright = captioner.caption(Image.fromarray(np.rot90(stored, k=-1).copy()))[0]
    assert rotated.image_size == (100, 200)
    assert rotated.words == upright.words


def test_one_encoder_pass_serves_every_captioner_with_the_same_encoder(tmp_path, vocab):
    """Compare mode's sharing: checkpoints on the packaged encoder share `encoder_key`, and
    captioning their common `encode` gives exactly what each gives alone."""
    from conftest import photo, write_checkpoint

    soft = Captioner.from_checkpoint(write_checkpoint(tmp_path / "s.pt", vocab, "soft"))
    luong = Captioner.from_checkpoint(write_checkpoint(tmp_path / "l.pt", vocab, "luong-concat"))
    other_size = Captioner.from_checkpoint(write_checkpoint(tmp_path / "b.pt", vocab,
                                                            image_size=160))
    assert soft.encoder_key == luong.encoder_key != other_size.encoder_key
    images = [photo(seed=1), photo(seed=2)]
    encoded = soft.encode(images)
    for captioner in (soft, luong):
        shared = captioner.caption_encoded(encoded, beam_size=3)
        alone = captioner.caption(images, beam_size=3)
        assert [c.words for c in shared] == [c.words for c in alone]
        for a, b in zip(shared, alone):
            assert a.word_probs == pytest.approx(b.word_probs)
        assert shared[0].image_size == images[0].size and len(shared[0].imagenet) == 5


def test_explain_reads_a_typed_caption_as_teacher_forcing_does(captioner):
    """Probabilities and maps of a typed caption equal the decoder's own teacher forcing; a
    word the vocabulary lacks is kept and marked, punctuation and case as the tokenizer does."""
    encoded = captioner.encode([photo()])
    explained = captioner.explain(encoded, "A zzzunknownword, on the GRASS!")
    assert explained.words == ["a", "zzzunknownword", "on", "the", "grass"]
    assert explained.known == [w in captioner.vocab.stoi for w in explained.words]
    assert explained.known[1] is False
    ids = captioner.vocab.encode(explained.words)
    alone = captioner.explain(encoded, "A zzzunknownword, on the GRASS!",
                              DEFAULT_OPTIONS.replace(fusion_weight=0.0))
    with torch.inference_mode():  # without fusion: the decoder's own teacher forcing
        out = captioner.decoder(encoded.features.float(), torch.tensor([ids]),
                                hard_mode=DEFAULT_OPTIONS.hard_mode)  # as the app decodes
    log_probs = out.logits[0].log_softmax(-1)
    expected = log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    assert alone.word_probs == pytest.approx(expected[:-1].exp().tolist(), abs=1e-5)
    assert alone.end_prob == pytest.approx(float(expected[-1].exp()), abs=1e-5)
    assert explained.alphas.shape == (5, *encoded.grid)
    assert np.allclose(explained.alphas.sum(axis=(1, 2)), 1.0, atol=1e-4)
    # the model's own caption, typed back, reads with the probabilities it was written with
    caption = captioner.caption_encoded(encoded, beam_size=1, grounding=False)[0]  # fused
    if caption.words:
        again = captioner.explain(encoded, caption.text)
        assert again.word_probs == pytest.approx(caption.word_probs, abs=1e-4)


@pytest.mark.parametrize("text, message", [("", "no words"), ("  ,.!? ", "no words"),
                                           ("word " * 51, "at most 50")])
def test_explain_refuses_empty_and_overlong_text(captioner, text, message):
    with pytest.raises(ValueError, match=message):
        captioner.explain(captioner.encode([photo()]), text)
