"""Training end to end on a generated dataset: overfitting, resume, cache checks, failures."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from captioner import Captioner, ModelConfig, load_checkpoint
from captioner.attention import ATTENTIONS
from training.data import DatasetError, load_karpathy
from training.features import build_cache, cache_folder, ensure_cache, open_cache
from training import loop
from training.config import parse_config
from training.loop import TrainingError
from training.optimizers import OPTIMIZERS
from training.train import train
from training.train import main as train_main

from fixture_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_dataset(root), root / "cache"


def tiny_args(shapes, out, *extra):
    data, cache = shapes
    return ["--data", str(data), "--cache-dir", str(cache), "--out", str(out),
            "--image-size", "64", "--min-word-count", "1", "--embed-dim", "32",
            "--hidden-dim", "64", "--attention-dim", "32", "--dropout", "0",
            "--batch-size", "4", "--lr", "0.005", "--log-every", "5",
            "--checkpoint-every", "5", "--threads", "1", *extra]


def read_log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("attention, flags", [(name, ()) for name in sorted(ATTENTIONS)]
                         + [("luong-general", ("--no-input-feeding",))])
def test_overfits_a_handful_of_captions(shapes, tmp_path, attention, flags):
    out = tmp_path / attention
    # Luong's readout (h~_t alone, no deep output over the word and context) memorises
    # more slowly on this tiny set: measured 0.26-0.28x of the first loss after 30 epochs,
    # and after 45, luong-concat reproduced 5 of the 8 captions on an AMD EPYC CPU (6 on Xeon).
    epochs = "60" if ATTENTIONS[attention].query == "current" else "30"
    extra = ["--attention", attention, "--epochs", epochs, "--early-stop-patience", "100", "--lr-patience", "100",
             "--doubly-stochastic", "0.01", *flags]
    best = train(parse_config(tiny_args(shapes, out, *extra)))
    log = read_log(out)
    train_lines = [r for r in log if r["type"] == "train"]
    assert train_lines[-1]["ce"] < 0.25 * train_lines[0]["ce"]
    if ATTENTIONS[attention].reinforce:
        assert any(r["reinforce"] != 0 for r in train_lines)
        assert all(r["baseline"] < 0 for r in train_lines)
    # greedy decoding reproduces a training caption
    captioner = Captioner.from_checkpoint(out / "last.pt")
    dataset = load_karpathy(shapes[0])
    hits = 0
    for record in dataset.split("train"):
        words = captioner.caption(dataset.image_path(record), beam_size=1, grounding=False,
                                  fusion_weight=0.0)[0].words  # the trained model alone
        hits += tuple(words) in record.captions
    assert hits >= 6  # of 8
    assert (out / "curves.png").stat().st_size > 1000
    assert best.exists() and load_checkpoint(best).metadata["val_bleu4"] >= 0
    assert load_checkpoint(best).config.input_feeding == ("--no-input-feeding" not in flags)


@pytest.mark.slow
@pytest.mark.parametrize("augment", [(), ("--flip-augment",)], ids=["plain", "flip"])
def test_resume_after_a_crash_matches_an_uninterrupted_run(shapes, tmp_path, monkeypatch,
                                                            augment):
    args = ["--epochs", "3", "--attention", "hard", *augment]
    full_out, cut_out = tmp_path / "full", tmp_path / "cut"
    train(parse_config(tiny_args(shapes, full_out, *args)))

    real_step = loop.train_step
    calls = {"n": 0}

    def crashing_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:  # step 8 never happens; last.pt was written at step 5
            raise KeyboardInterrupt("simulated kill")
        return real_step(*a, **k)
    monkeypatch.setattr(loop, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(parse_config(tiny_args(shapes, cut_out, *args)))
    monkeypatch.setattr(loop, "train_step", real_step)
    assert load_checkpoint(cut_out / "last.pt").training["progress"]["step"] == 5
    with pytest.raises(TrainingError, match="--resume"):
        train(parse_config(tiny_args(shapes, cut_out, *args)))
    train(parse_config(tiny_args(shapes, cut_out, *args, "--resume")))

    full, cut = load_checkpoint(full_out / "last.pt"), load_checkpoint(cut_out / "last.pt")
    assert cut.training["progress"] == full.training["progress"]
    for key, value in full.decoder.items():
        assert torch.allclose(value, cut.decoder[key], atol=1e-6), key
    steps = [r["step"] for r in read_log(cut_out) if r["type"] == "train"]
    assert steps == sorted(set(steps))  # the log continues without duplicates or gaps
    assert steps == [r["step"] for r in read_log(full_out) if r["type"] == "train"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(shapes, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "training.train",
               *tiny_args(shapes, out, "--epochs", "200", "--checkpoint-every", "3",
                          "--early-stop-patience", "1000")]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "last.pt").exists():
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = load_checkpoint(out / "last.pt").training["progress"]["step"]  # never corrupt
    assert saved >= 3
    result = subprocess.run(command[:3] + tiny_args(shapes, out, "--epochs", "200",
                                                    "--max-steps", str(saved + 6), "--resume"),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"step {saved}" in result.stderr
    steps = [r["step"] for r in read_log(out) if r["type"] == "train"]
    assert steps == sorted(set(steps))  # lines after the checkpoint were dropped, then redone
    assert load_checkpoint(out / "last.pt").training["progress"]["step"] == saved + 6


@pytest.mark.slow
def test_a_run_writes_a_slim_model_file_beside_best_and_last(shapes, tmp_path):
    out = tmp_path / "slim"
    assert train_main(tiny_args(shapes, out, "--max-steps", "2")) == 0
    best, last, model = (out / name for name in ("best.pt", "last.pt", "model.pt"))
    raw = torch.load(model, map_location="cpu", weights_only=True)
    assert raw["training"] is None  # no optimizer state
    assert {v.dtype for v in raw["decoder"].values() if v.is_floating_point()} == \
        {torch.float16}
    # float16 (int8 rows for the vocabulary matrices): about half of best.pt's float32, which
    # is a third of last.pt with Adam's two moments
    assert model.stat().st_size < 0.6 * best.stat().st_size < 0.3 * last.stat().st_size
    assert load_checkpoint(model).metadata["val_bleu4"] == \
        load_checkpoint(best).metadata["val_bleu4"]
    # the app and the CLI open it as any checkpoint
    captioner = Captioner.from_checkpoint(model)
    image = load_karpathy(shapes[0]).images[0]
    assert captioner.caption(shapes[0].parent / "images" / image.path, beam_size=2)[0].words
    assert sorted(p.name for p in out.glob("*.pt*")) == ["best.pt", "last.pt", "model.pt"]


def test_cache_detects_a_mismatched_manifest_and_rebuilds(shapes, tmp_path):
    data, _ = shapes
    dataset = load_karpathy(data)
    cache_dir = tmp_path / "cache"
    cache = ensure_cache(dataset, cache_dir, "efficientnet_lite0", 64)
    assert cache.features.shape == (len(dataset.images), 4, 1280)
    folder = cache_folder(cache_dir, dataset, "efficientnet_lite0", 64)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["key"]["weights"] = "some other weights"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert open_cache(folder, None) is not None  # readable ...
    rebuilt = ensure_cache(dataset, cache_dir, "efficientnet_lite0", 64)  # ... but not a match
    assert json.loads((folder / "manifest.json").read_text())["key"]["weights"] != \
        "some other weights"
    assert (rebuilt.features[:] == cache.features[:]).all()


def test_interrupted_cache_resumes(shapes, tmp_path):
    data, _ = shapes
    dataset = load_karpathy(data)
    cache = ensure_cache(dataset, tmp_path / "c", "efficientnet_lite0", 64)
    expected = cache.features[:].copy()
    (cache.folder / "progress").write_text("5")  # as if killed after 5 images
    assert open_cache(cache.folder) is None  # partial caches are never used
    resumed = ensure_cache(dataset, tmp_path / "c", "efficientnet_lite0", 64)
    assert (resumed.features[:] == expected).all()


def test_sharded_cache_equals_one_shard_and_resumes_across_shards(shapes, tmp_path):
    data, _ = shapes
    dataset = load_karpathy(data)
    paths = [r.path for r in dataset.images]
    whole = ensure_cache(dataset, tmp_path / "whole", "efficientnet_lite0", 64)
    sharded = build_cache(tmp_path / "sharded", dataset.image_root, paths, "efficientnet_lite0",
                          64, batch_size=4, workers=0, shard_rows=5)
    assert sorted(p.name for p in sharded.folder.glob("*.f16")) == \
        ["features-00000.f16", "features-00001.f16", "features-00002.f16"]  # 12 = 5 + 5 + 2
    # Same numbers up to float16 rounding: a different batch composition can move an fp32
    # result across a float16 rounding boundary on some CPUs (one ulp, 0.002 near 4).
    def same(a, b):
        return np.allclose(a.astype(np.float32), b.astype(np.float32), rtol=1e-3, atol=1e-3)
    assert same(sharded.features[:], whole.features[:])
    assert torch.allclose(sharded.batch([11, 0, 6, 5]), whole.batch([11, 0, 6, 5]),
                          rtol=1e-3, atol=1e-3)
    (sharded.folder / "progress").write_text("7")  # killed in the middle of shard 1
    resumed = build_cache(sharded.folder, dataset.image_root, paths, "efficientnet_lite0", 64,
                          batch_size=4, workers=0, shard_rows=5)
    assert same(resumed.features[:], whole.features[:])
    assert not same(resumed.features[1:], whole.features[:-1])  # rows are not shifted


def test_missing_images_and_bad_json_are_reported_up_front(shapes, tmp_path):
    data, _ = shapes
    entries = json.loads(data.read_text())
    entries["images"][0]["filename"] = "nope_1.png"
    entries["images"][1]["filename"] = "nope_2.png"
    entries["images"][2]["sentences"] = [{"raw": "...", "tokens": []}]
    broken = data.parent / "broken.json"
    broken.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="1 images without any non-empty caption"):
        load_karpathy(broken)
    entries["images"][2]["sentences"] = entries["images"][3]["sentences"]
    broken.write_text(json.dumps(entries))
    dataset = load_karpathy(broken)
    with pytest.raises(DatasetError, match="2 missing image files: nope_1.png, nope_2.png"):
        ensure_cache(dataset, tmp_path / "c", "efficientnet_lite0", 64)
    with pytest.raises(DatasetError, match="dataset file not found"):
        load_karpathy(tmp_path / "absent.json")


@pytest.mark.slow
def test_training_on_a_complete_cache_needs_no_photos(shapes, tmp_path, capsys):
    data, cache = shapes
    assert train_main(tiny_args(shapes, tmp_path / "first", "--max-steps", "1")) == 0  # cached
    alone = tmp_path / "json-alone" / data.name  # no images/ beside it, and no --images
    alone.parent.mkdir()
    alone.write_text(data.read_text())
    assert train_main(tiny_args((alone, cache), tmp_path / "second", "--max-steps", "1")) == 0
    capsys.readouterr()
    # without the cache, the photos are needed and their absence is reported up front
    assert train_main(tiny_args((alone, tmp_path / "no-cache"), tmp_path / "third")) == 2
    assert "image folder not found (pass --images DIR)" in capsys.readouterr().err


def test_unreadable_image_is_reported_not_a_worker_crash(shapes, tmp_path):
    data, _ = shapes
    dataset = load_karpathy(data)
    bad = tmp_path / "images"
    bad.mkdir()
    for record in dataset.images:
        (bad / record.path).write_bytes((dataset.image_path(record)).read_bytes())
    (bad / dataset.images[3].path).write_bytes(b"garbage bytes")
    dataset.image_root = bad
    from captioner.images import ImageError
    with pytest.raises(ImageError, match="1 image\\(s\\) could not be read.*not an image"):
        ensure_cache(dataset, tmp_path / "c", "efficientnet_lite0", 64)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(shapes, tmp_path,
                                                                    monkeypatch):
    out = tmp_path / "nan"
    real_loss = loop.caption_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        terms = real_loss(*a, **k)
        calls["n"] += 1
        if calls["n"] == 7:
            return terms._replace(loss=terms.loss * float("nan"))
        return terms
    monkeypatch.setattr(loop, "caption_loss", poisoned)
    with pytest.raises(TrainingError, match="at step 7"):
        train(parse_config(tiny_args(shapes, out, "--epochs", "5")))
    assert load_checkpoint(out / "last.pt").training["progress"]["step"] == 5


def test_unwritable_output_is_refused_at_start(shapes, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrainingError, match="not writable"):
        train(parse_config(tiny_args(shapes, blocker / "out")))


def test_a_soft_model_warm_starts_hard_attention(shapes, tmp_path):
    soft = tmp_path / "soft"
    assert train_main(tiny_args(shapes, soft, "--max-steps", "3")) == 0
    hard = tmp_path / "hard"
    assert train_main(tiny_args(shapes, hard, "--init", str(soft / "last.pt"), "--attention",
                                "hard", "--max-steps", "1", "--optimizer", "sgd",
                                "--lr", "0")) == 0
    started, warm = load_checkpoint(soft / "last.pt"), load_checkpoint(hard / "last.pt")
    assert warm.config.attention == "hard" and warm.vocab.itos == started.vocab.itos
    assert all(torch.equal(v, started.decoder[k]) for k, v in warm.decoder.items())


def test_init_takes_the_checkpoints_model_and_refuses_a_contradicting_flag(shapes, tmp_path,
                                                                          capsys):
    soft = tmp_path / "soft"
    assert train_main(tiny_args(shapes, soft, "--max-steps", "1")) == 0  # hidden 64, 64 px
    # Model flags left out take the checkpoint's values, not the defaults (hidden 512, 224 px).
    data, cache = shapes
    bare = ["--data", str(data), "--cache-dir", str(cache), "--init", str(soft / "last.pt"),
            "--batch-size", "4", "--threads", "1", "--max-steps", "1"]
    assert train_main([*bare, "--out", str(tmp_path / "warm")]) == 0
    warm = load_checkpoint(tmp_path / "warm" / "last.pt").config
    assert warm == load_checkpoint(soft / "last.pt").config
    # A given flag that contradicts the checkpoint names itself and both values.
    for flag, value, theirs in (("--hidden-dim", "32", "64"), ("--image-size", "96", "64"),
                                ("--gate", "none", "scalar")):
        capsys.readouterr()
        assert train_main([*bare, "--out", str(tmp_path / "bad"), flag, value]) == 2
        error = capsys.readouterr().err
        assert f"{flag} {value} contradicts the checkpoint's {theirs}" in error, error
    # ... while one that agrees with it is fine.
    assert train_main([*bare, "--out", str(tmp_path / "same"), "--hidden-dim", "64"]) == 0


def test_model_flags_are_model_configs_fields_and_only_training_train_has_them():
    from training.config import FinetuneConfig, ScstConfig

    config = parse_config(["--data", "x.json", "--hidden-dim", "96", "--attention", "hard"])
    assert (config.model.hidden_dim, config.model.attention, config.model.embed_dim) == \
        (96, "hard", ModelConfig().embed_dim)  # a flag left out keeps the config's default
    assert config.model_flags == ("attention", "hidden_dim")  # given, not defaulted
    for argv, cls in ((["--vocab-size", "3"], None), (["--dropout", "0"], FinetuneConfig),
                      (["--attention", "hard"], ScstConfig)):
        with pytest.raises(SystemExit):
            parse_config(["--data", "x.json", *argv], **({"cls": cls} if cls else {}))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_flag_choices_are_the_registry(name):
    config = parse_config(["--data", "x.json", "--optimizer", name, "--lr", "0.1"])
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = loop.make_optimizer([{"params": [weight]}], config)
    assert isinstance(optimizer, torch.optim.Optimizer) and optimizer.defaults["lr"] == 0.1


def test_an_unregistered_optimizer_is_refused():
    with pytest.raises(SystemExit):
        parse_config(["--data", "x.json", "--optimizer", "lbfgs"])


@pytest.mark.parametrize("cls", ["TrainConfig", "FinetuneConfig", "ScstConfig"])
def test_threads_below_one_are_refused_by_every_stage(cls, capsys):
    from training import config

    with pytest.raises(SystemExit):
        parse_config(["--data", "x.json", "--threads", "0"], cls=getattr(config, cls))
    assert "--threads must be at least 1 (got 0)" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["cache", "evaluate", "language_model", "concepts"])
def test_threads_below_one_are_refused_by_the_other_training_commands(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"training.{module}").main(["--threads", "0"])
    assert exit_.value.code == 2
    assert "argument --threads: must be at least 1 (got 0)" in capsys.readouterr().err


def test_unknown_flags_are_an_error():
    result = subprocess.run([sys.executable, "-m", "training.train", "--data", "x.json",
                             "--hiden-dim", "3"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "unrecognized arguments: --hiden-dim" in result.stderr


@pytest.mark.slow
def test_evaluate_command_writes_every_metric(shapes, tmp_path):
    from training.metrics import java_available

    out = tmp_path / "run"
    train(parse_config(tiny_args(shapes, out, "--epochs", "2")))
    data, cache = shapes
    result_path = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, "-m", "training.evaluate", "--checkpoint", str(out / "best.pt"),
         "--data", str(data.parent), "--split", "val", "--beam", "2", "--cache-dir", str(cache),
         "--out", str(result_path), "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result_path.read_text())
    assert set(report["metrics"]) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
                                      "ROUGE-L", "CIDEr"}
    for key, value in report["metrics"].items():
        if key == "METEOR" and not java_available():
            assert value is None
        else:
            assert 0.0 <= value <= 10.0
    assert report["split"] == "val" and report["beam"] == 2
    assert len(report["captions"]) == 2
    assert set(report["captions"][0]) == {"image", "caption", "references"}
    assert "BLEU-4" in result.stdout  # the printed table
    assert report["block_repeats"] is True and report["diversity"]["distinct_words"] >= 1
    assert report["decoding"]["attention_temperature"] == 1.0  # the model's own, resolved

    # --rescore scores a result file's own captions again (GPU captions, scored where Java is)
    from training.evaluate import main as evaluate_main
    again = tmp_path / "again.json"
    assert evaluate_main(["--rescore", str(result_path), "--out", str(again)]) == 0
    assert json.loads(again.read_text())["metrics"] == report["metrics"]
    report["captions"][0]["caption"] = " ".join(report["captions"][0]["references"][0].split())
    result_path.write_text(json.dumps(report))
    assert evaluate_main(["--rescore", str(result_path), "--out", str(again)]) == 0
    assert json.loads(again.read_text())["metrics"]["BLEU-1"] != report["metrics"]["BLEU-1"]
    assert evaluate_main(["--rescore", str(tmp_path / "missing.json")]) == 2


def test_diversity_counts_loops_words_and_duplicates():
    from training.evaluate import diversity

    stats = diversity(["a man in a red shirt and a red shirt", "a dog runs", "a dog runs",
                       "a a a a"])
    assert stats["captions_repeating_a_trigram"] == 2  # "a red shirt" twice, "a a a" twice
    assert stats["captions_repeating_a_content_word"] == 1  # "red", "shirt"; "a" may repeat
    assert stats["distinct_words"] == 8  # a man in red shirt and dog runs
    assert stats["distinct_captions"] == 0.75


def test_evaluate_prints_and_rescores_the_people_measures(monkeypatch, capsys):
    from training import evaluate
    from training.metrics import CaptionScores

    captions = [{"image": "a.jpg", "caption": "he walks a dog",
                 "references": ["a dog"] * 5},  # people invented
                {"image": "b.jpg", "caption": "a dog on grass",
                 "references": ["a man and a dog"] * 3 + ["a dog"] * 2}]  # people not named
    old = {"checkpoint": "x.pt", "split": "test", "beam": 3, "images": 2, "notes": [],
           "metrics": {}, "diversity": {}, "captions": captions,
           "objects": {"main_object_named": 1.0, "photos_with_main_object": 2, "chair_s": 0.0,
                       "chair_i": 0.0, "with_instances": False}}  # written before these measures
    monkeypatch.setattr(evaluate, "score_captions", lambda p, r: CaptionScores(*[0.5] * 7))
    evaluate.print_table({**old, "metrics": CaptionScores(*[0.5] * 7).as_dict()})
    assert "CHAIR-s 0.000" in capsys.readouterr().out
    result = evaluate.rescore(old)
    assert result["objects"]["people_invented"] == 0.5
    assert result["objects"]["anything_invented"] == 0.5
    assert result["objects"]["people_named_where_present"] == 0.0
    assert result["objects"]["photos_with_people"] == 1
    evaluate.print_table(result)
    assert ("people invented 0.500  anything invented 0.500  people named where present 0.000 "
            "(of 1 photos)") in capsys.readouterr().out
    annotated = {**old, "objects": {**old["objects"], "with_instances": True}}
    assert evaluate.rescore(annotated)["objects"] == annotated["objects"]  # cannot redo those


@pytest.mark.slow
def test_evaluate_reports_a_bad_checkpoint(shapes, tmp_path):
    data, cache = shapes
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"x" * 100)
    result = subprocess.run([sys.executable, "-m", "training.evaluate", "--checkpoint", str(bad),
                             "--data", str(data)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "bad.pt" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_is_refused_at_start(shapes, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1000))
    with pytest.raises(TrainingError, match="MB free"):
        train(parse_config(tiny_args(shapes, tmp_path / "out")))
