"""Data-parallel training under torchrun: 2 gloo processes on CPU, on the generated dataset."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from captioner import load_checkpoint
from training.data import load_karpathy
from training.features import ensure_cache
from training.distributed import Runtime, select_device, setup
from training.batches import image_batches
from training.checkpoints import rescale_position

from fixture_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    data = make_dataset(root)
    # Build the cache once, up front, so the runs below only train.
    ensure_cache(load_karpathy(data), root / "cache", "efficientnet_lite0", 64, workers=0)
    return data, root / "cache"


def run(shapes, out, processes: int, batch_size: int, *extra: str
        ) -> subprocess.CompletedProcess:
    data, cache = shapes
    args = ["--data", str(data), "--cache-dir", str(cache), "--out", str(out),
            "--image-size", "64", "--min-word-count", "1", "--embed-dim", "32",
            "--hidden-dim", "64", "--attention-dim", "32", "--dropout", "0",
            "--batch-size", str(batch_size), "--lr", "0.005", "--log-every", "1",
            "--checkpoint-every", "1", "--val-images", "2",
            "--threads", "1", "--device", "cpu", *extra]
    if processes == 1:
        command = [sys.executable, "-m", "training.train", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", "-m", "training.train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "last.pt").decoder


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-5), name


@pytest.mark.slow
def test_two_processes_equal_one_process_over_the_same_global_batch(shapes, tmp_path):
    """torchrun with 2 x 2 captions per step == one process with 4: gradients averaged by
    DDP over a loss normalised by the global batch's words. (SGD, because Adam's first step
    is about lr * sign(gradient), which turns rounding noise in tiny gradients into lr.)"""
    run(shapes, tmp_path / "one", 1, 4, "--max-steps", "1", "--optimizer", "sgd", "--lr", "0.5")
    result = run(shapes, tmp_path / "two", 2, 2, "--max-steps", "1", "--optimizer", "sgd",
                 "--lr", "0.5")
    assert "2 process(es) on cpu" in result.stderr
    before = load_checkpoint(tmp_path / "one" / "last.pt")
    assert before.training["progress"]["step"] == 1
    assert load_checkpoint(tmp_path / "two" / "last.pt").training["world_size"] == 2
    assert_same_weights(weights(tmp_path / "one"), weights(tmp_path / "two"))
    # The step changed the weights (so the comparison above compares something).
    untrained = run(shapes, tmp_path / "zero", 1, 4, "--max-steps", "1", "--optimizer", "sgd",
                    "--lr", "0")
    changed = [n for n, w in weights(tmp_path / "one").items()
               if not torch.equal(w, weights(tmp_path / "zero")[n])]
    assert len(changed) > 5, untrained.stderr


@pytest.mark.slow
def test_resume_under_torchrun_continues_exactly(shapes, tmp_path):
    run(shapes, tmp_path / "straight", 2, 2, "--max-steps", "3")
    run(shapes, tmp_path / "stopped", 2, 2, "--max-steps", "1")
    resumed = run(shapes, tmp_path / "stopped", 2, 2, "--max-steps", "3", "--resume")
    assert "resumed" in resumed.stderr and "step 1" in resumed.stderr
    checkpoint = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert checkpoint.training["progress"]["step"] == 3
    assert len(checkpoint.training["rng"]) == 2  # each process's random state
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "stopped"))


def test_per_process_batches_tile_the_global_batches():
    table = [(i, [1] + [5] * (i % 7) + [2]) for i in range(50)]  # 50 = 8 x 6 + 2
    single = image_batches(table, 6, seed=3, epoch=1)
    for processes in (2, 3):
        parts = image_batches(table, 6 // processes, seed=3, epoch=1, processes=processes)
        merged = [sum(parts[i:i + processes], []) for i in range(0, len(parts), processes)]
        assert merged == [b for b in single if len(b) >= processes]
        assert all(parts), "every process gets captions at every step"
    # 3 processes cannot share the 2-caption remainder: it is dropped, nothing else is.
    assert sorted(i for b in parts for i in b) == sorted(i for b in single if len(b) == 6
                                                        for i in b)


def test_resume_with_another_process_count_keeps_the_epoch_fraction():
    assert rescale_position(10, saved_world=2, world=2) == 10
    assert rescale_position(10, saved_world=2, world=4) == 5
    assert rescale_position(5, saved_world=4, world=1) == 20


def test_device_and_precision_choices(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    runtime = setup("cpu", "bf16")
    assert runtime == Runtime(torch.device("cpu"), 0, 1, "bf16") and not runtime.distributed
    with runtime.autocast():
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.bfloat16
    assert not runtime.grad_scaler().is_enabled()
    if not torch.cuda.is_available():
        assert select_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            select_device("cuda")
        with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
            setup("cpu", "fp16")
    with pytest.raises(ValueError, match="--device must be"):
        select_device("tpu")
