"""Checkpoints carry everything needed to caption, and bad files fail clearly."""
import os
import random
import pickle
import socket
import threading

import pytest
import torch

from captioner import Captioner, CheckpointError, load_checkpoint, save_checkpoint
from captioner.checkpoint import FORMAT_VERSION, MAX_CHECKPOINT_BYTES, torch_message

from conftest import photo, write_checkpoint


def test_round_trip_gives_identical_captions(tmp_path, checkpoint_path):
    first = Captioner.from_checkpoint(checkpoint_path)
    again = tmp_path / "again.pt"
    save_checkpoint(load_checkpoint(checkpoint_path), again)
    second = Captioner.from_checkpoint(again)
    images = [photo(seed=s) for s in range(3)]
    a = first.caption(images, beam_size=3)
    b = second.caption(images, beam_size=3)
    assert [c.words for c in a] == [c.words for c in b]
    assert [c.score for c in a] == pytest.approx([c.score for c in b])


def test_checkpoint_holds_config_vocab_preprocessing_and_metadata(checkpoint_path, vocab,
                                                                   attention_kind):
    checkpoint = load_checkpoint(checkpoint_path)
    assert checkpoint.vocab == vocab
    assert checkpoint.config.attention == attention_kind
    assert checkpoint.preprocessing.image_size == checkpoint.config.image_size
    assert checkpoint.metadata == {"note": "test"}
    # Plain safe loading works with no other file and no captioner code involved.
    raw = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert raw["vocab"] == vocab.itos


def test_half_precision_storage_is_smaller_and_loads_as_float32(tmp_path, checkpoint_path):
    half = tmp_path / "half.pt"
    save_checkpoint(load_checkpoint(checkpoint_path), half, half=True)
    assert half.stat().st_size < 0.7 * checkpoint_path.stat().st_size
    assert all(v.dtype == torch.float32 for v in load_checkpoint(half).decoder.values()
               if v.is_floating_point())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_random_bytes_and_truncated_file(tmp_path, checkpoint_path):
    junk = tmp_path / "junk.pt"
    rng = random.Random(0)
    for size in [1, 7, 64, 4096] * 10:  # garbage reaches different corners of the unpickler
        junk.write_bytes(bytes(rng.randrange(256) for _ in range(size)))
        with pytest.raises(CheckpointError, match="junk.pt: not a readable PyTorch checkpoint"):
            load_checkpoint(junk)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(checkpoint_path.read_bytes()[: checkpoint_path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt: .*truncated") as error:
        load_checkpoint(cut)
    # torch's explanation ends at a sentence's end, or says that more was left out
    assert str(error.value).endswith((".)", " [...])")), str(error.value)


def test_torch_messages_are_kept_whole_or_cut_between_sentences():
    assert torch_message("Unsupported operand 149") == "Unsupported operand 149"
    two_lines = "Error(s) in loading state_dict for Decoder:\n\tMissing key(s): \"out.bias\". "
    assert torch_message(two_lines) == ('Error(s) in loading state_dict for Decoder: Missing '
                                        'key(s): "out.bias".')
    sentences = " ".join(f"Sentence number {i} says something." for i in range(30))
    short = torch_message(sentences, limit=100)
    assert short == " ".join(f"Sentence number {i} says something." for i in range(2)) + " [...]"
    assert torch_message("\x1b[1mbold\x1b[0m words.") == "bold words."
    # one sentence listing a thousand keys is cut after one of them
    keys = "Missing key(s): " + ", ".join(f'"layer{i}.weight"' for i in range(1000)) + "."
    cut = torch_message(keys)
    assert cut.endswith('.weight", [...]') and len(cut) < 1100


class _Exploit:
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_pickled_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "captioner-checkpoint", "payload": _Exploit()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt: refused for safety: .* not plain "
                                              r"weights \(\S*open\)"):
        load_checkpoint(evil)
    assert not marker.exists()
    # and the same with a raw pickle file
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


class _ShellCommand:
    command = ""

    def __reduce__(self):
        return (os.system, (self.command,))  # would run the command when unpickled


def test_a_file_that_would_run_a_command_is_refused_as_unsafe_not_as_truncated(tmp_path):
    marker = tmp_path / "ran"
    _ShellCommand.command = f"touch '{marker}'"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "captioner-checkpoint", "decoder": _ShellCommand()}, evil)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(evil)
    message = str(error.value)
    assert message.startswith(f"{evil}: refused for safety: the file holds objects that are not "
                              f"plain weights ({os.system.__module__}.system)")
    assert "untrusted" in message
    assert "truncated" not in message and "not a readable" not in message
    assert not marker.exists()
    # a pickled module (not a state dict) is refused the same way
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)
    with pytest.raises(CheckpointError, match=r"refused for safety: .*\(torch\.nn\.modules\."
                                              r"linear\.Linear\)"):
        load_checkpoint(module)


def _mutated(tmp_path, checkpoint_path, mutate):
    raw = torch.load(checkpoint_path, weights_only=True)
    mutate(raw)
    path = tmp_path / "mutated.pt"
    torch.save(raw, path)
    return path


def test_foreign_dict_wrong_version_and_missing_keys(tmp_path, checkpoint_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a captioner checkpoint"):
        load_checkpoint(foreign)
    path = _mutated(tmp_path, checkpoint_path, lambda r: r.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(path)
    path = _mutated(tmp_path, checkpoint_path, lambda r: r.pop("vocab"))
    with pytest.raises(CheckpointError, match="missing vocab"):
        load_checkpoint(path)


def test_encoder_base_must_be_known_and_come_with_encoder_weights(tmp_path, checkpoint_path):
    for raw_change in ({"encoder_base": "imagenet"}, {"encoder_base": "pretrained"}):
        path = _mutated(tmp_path, checkpoint_path, lambda r: r.update(raw_change))
        with pytest.raises(CheckpointError, match="invalid encoder_base"):
            load_checkpoint(path)


def test_vocabulary_that_does_not_match_the_weights(tmp_path, checkpoint_path):
    def add_word(raw):
        raw["vocab"].append("zebra")
        raw["config"]["vocab_size"] += 1
    with pytest.raises(CheckpointError, match="does not match the decoder weights"):
        load_checkpoint(_mutated(tmp_path, checkpoint_path, add_word))
    with pytest.raises(CheckpointError, match="vocabulary has"):
        load_checkpoint(_mutated(tmp_path, checkpoint_path, lambda r: r["vocab"].append("z")))


def test_weights_that_do_not_match_the_config(tmp_path, checkpoint_path):
    path = _mutated(tmp_path, checkpoint_path, lambda r: r["config"].update(hidden_dim=32))
    with pytest.raises(CheckpointError, match="decoder weights do not match the config") as error:
        Captioner.from_checkpoint(path)
    # torch's lines after its first ("Error(s) in loading state_dict for Decoder:") say what
    assert "size mismatch for " in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).endswith((".)", " [...])")), str(error.value)


def test_atomic_save_leaves_no_temporary_files(tmp_path, vocab):
    path = write_checkpoint(tmp_path / "model.pt", vocab)
    save_checkpoint(load_checkpoint(path), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def _load_with_deadline(path, seconds: float = 10.0, **kwargs):
    """load_checkpoint in a daemon thread: returns what it raised, or fails the test if it is
    still blocked after `seconds` (a FIFO read would wait for a writer forever)."""
    outcome = {}

    def load():
        try:
            load_checkpoint(path, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"load_checkpoint({path}) blocked"
    return outcome.get("error")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    error = _load_with_deadline(fifo)
    assert isinstance(error, CheckpointError)
    assert str(error) == f"{fifo}: is a named pipe (FIFO), not a checkpoint file; refused unread"
    link = tmp_path / "link.pt"  # a symlink is followed, and what it points to is judged
    link.symlink_to(fifo)
    assert "link.pt: is a named pipe (FIFO)" in str(_load_with_deadline(link))


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_a_device_is_refused():
    with pytest.raises(CheckpointError, match=r"^/dev/null: is a character device, not a "
                                              "checkpoint file; refused unread$"):
        load_checkpoint("/dev/null")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.pt"
    if len(str(path)) > 100:  # a Unix socket path must fit in about 104 bytes
        pytest.skip("temporary folder path too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(CheckpointError, match="s.pt: is a socket, not a checkpoint file"):
            load_checkpoint(path)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, checkpoint_path, monkeypatch):
    size = checkpoint_path.stat().st_size
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(checkpoint_path, max_bytes=size - 1)
    assert str(refused.value).startswith(f"{checkpoint_path}: is ")
    assert str(refused.value).endswith(" limit for a checkpoint; refused unread")
    assert load_checkpoint(checkpoint_path, max_bytes=size).vocab  # exactly the limit is fine

    def never(*args, **kwargs):
        raise AssertionError("torch.load was reached")
    monkeypatch.setattr(torch, "load", never)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"x" * 2000)
    with pytest.raises(CheckpointError, match=r"junk.pt: is 2,000 bytes, over the 1,000 bytes "
                                              "limit for a checkpoint; refused unread"):
        load_checkpoint(junk, max_bytes=1000)
    assert MAX_CHECKPOINT_BYTES >= 100 * 2**20  # far above the shipped models (about 21 MB)


def test_messages_can_name_the_file_differently(tmp_path):
    junk = tmp_path / "tmp1234.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"^my model\.pt: not a readable PyTorch"):
        load_checkpoint(junk, name="my model.pt")


def test_export_saves_how_the_model_decodes_and_a_captioner_uses_it(tmp_path, vocab):
    from training.export import main as export_main
    trained = write_checkpoint(tmp_path / "hard.pt", vocab, "hard")
    shipped = tmp_path / "shipped.pt"
    assert export_main(["--checkpoint", str(trained), "--out", str(shipped),
                        "--attention-temperature", "0.4", "--hard-inference", "expectation"]) == 0
    config = load_checkpoint(shipped).config
    assert (config.attention_temperature, config.hard_inference) == (0.4, "expectation")
    image = photo(seed=3)
    sharp = Captioner.from_checkpoint(shipped).caption([image], grounding=False)[0]
    same = Captioner.from_checkpoint(trained).caption([image], grounding=False,
                                                      attention_temperature=0.4)[0]
    assert sharp.words == same.words and torch.allclose(torch.as_tensor(sharp.alphas),
                                                        torch.as_tensor(same.alphas), atol=1e-3)
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(trained), "--out", str(tmp_path / "bad.pt"),
                     "--attention-temperature", "-1"])
    assert not (tmp_path / "bad.pt").exists()


def test_export_can_make_a_model_decode_in_int8_and_back(tmp_path, vocab):
    from training.export import main as export_main
    trained = write_checkpoint(tmp_path / "soft.pt", vocab, "soft")
    assert not load_checkpoint(trained).config.quantized  # off unless asked
    int8, kept, back = tmp_path / "int8.pt", tmp_path / "kept.pt", tmp_path / "back.pt"
    assert export_main(["--checkpoint", str(trained), "--out", str(int8), "--quantize"]) == 0
    assert export_main(["--checkpoint", str(int8), "--out", str(kept)]) == 0
    assert export_main(["--checkpoint", str(int8), "--out", str(back), "--no-quantize"]) == 0
    assert [load_checkpoint(p).config.quantized for p in (int8, kept, back)] == [True, True, False]
    weights = load_checkpoint(int8).decoder  # the file's weights are the float ones
    assert all(torch.equal(weights[k], v) for k, v in load_checkpoint(back).decoder.items())


def test_export_takes_a_shipped_model_by_name(tmp_path, capsys):
    from training.export import main as export_main

    out = tmp_path / "hard.pt"
    assert export_main(["--checkpoint", "hard", "--out", str(out),
                        "--attention-temperature", "0.7"]) == 0
    exported = load_checkpoint(out)
    assert exported.config.attention_temperature == 0.7
    assert exported.metadata["exported_from"] == "hard"
    capsys.readouterr()
    assert export_main(["--checkpoint", "medium", "--out", str(tmp_path / "x.pt")]) == 2
    assert capsys.readouterr().err == (
        "error: medium: no such checkpoint file, nor a shipped model (soft, hard)\n")


def test_export_can_run_the_decoder_on_a_finer_grid(tmp_path, vocab):
    from training.export import main as export_main
    trained = write_checkpoint(tmp_path / "soft.pt", vocab, "soft", image_size=128)
    finer = tmp_path / "finer.pt"
    assert export_main(["--checkpoint", str(trained), "--out", str(finer),
                        "--image-size", "256"]) == 0
    saved = load_checkpoint(finer)
    assert saved.config.image_size == saved.preprocessing.image_size == 256
    caption = Captioner.from_checkpoint(finer).caption([photo(seed=1)], grounding=False)[0]
    assert caption.alphas.shape[1:] == (8, 8)  # 256 / 32 a side, against 4x4 at 128 px
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(trained), "--out", str(tmp_path / "bad.pt"),
                     "--image-size", "250"])


def test_shipped_files_store_vocabulary_matrices_as_int8_rows(tmp_path, vocab):
    """half=True: embedding and output layer as int8 rows with float16 scales, read back within
    half a step of each row's scale; a scale that does not fit its rows is refused."""
    from captioner import Checkpoint, ModelConfig, build_decoder
    from captioner.checkpoint import ROW_SCALE
    from captioner.encoder import preprocessing_for
    config = ModelConfig(vocab_size=len(vocab), encoder_dim=16, embed_dim=12, hidden_dim=20,
                         attention_dim=14)
    decoder = build_decoder(config)
    path = tmp_path / "half.pt"
    save_checkpoint(Checkpoint(config, vocab, preprocessing_for(config.encoder, 224),
                               decoder.state_dict()), path, half=True)
    raw = torch.load(path, weights_only=True)
    assert raw["decoder"]["out.weight"].dtype == torch.int8
    assert raw["decoder"]["embedding.weight" + ROW_SCALE].dtype == torch.float16
    loaded = load_checkpoint(path)
    assert "out.weight" + ROW_SCALE not in loaded.decoder
    for key in ("embedding.weight", "out.weight"):
        original = decoder.state_dict()[key]
        step = original.abs().amax(1, keepdim=True) / 127
        assert ((loaded.decoder[key] - original).abs() <= 0.51 * step + 1e-3).all()
    raw["decoder"]["out.weight" + ROW_SCALE] = raw["decoder"]["out.weight" + ROW_SCALE][:2]
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="row scales"):
        load_checkpoint(tmp_path / "bad.pt")
