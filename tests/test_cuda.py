"""CUDA paths: mixed precision training steps, decoding on the GPU, the training CLIs with
--device cuda. Skipped where no GPU is visible (CI); run on a GPU machine."""
import numpy as np
import pytest
import torch

from captioner import build_decoder, load_checkpoint
from captioner.search import search
from training.data import load_karpathy
from training.features import build_cache
from training.config import TrainConfig
from training.distributed import Runtime, setup
from training.finetune import main as finetune_main
from training.batches import Batch
from training.loop import Progress, make_optimizer, train_step
from training.train import main as train_main

from conftest import tiny_config
from fixture_data import make_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_steps_in_each_precision(vocab, attention_kind, precision):
    config = TrainConfig(data="-", lr=1e-2)
    decoder = build_decoder(tiny_config(vocab, attention_kind)).to(CUDA)
    optimizer = make_optimizer([{"params": decoder.parameters()}], config)
    runtime = Runtime(CUDA, precision=precision)
    scaler = runtime.grad_scaler()
    assert scaler.is_enabled() == (precision == "fp16")
    captions = torch.tensor([vocab.encode(["a", "red", "square", "on", "grass"])] * 8)
    batch = Batch(torch.randn(4, 9, 16), captions, torch.arange(4).repeat(2)).to(CUDA)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    losses = [train_step(decoder, batch, optimizer, config, Progress(), runtime, scaler)["ce"]
              for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.7  # it learns the repeated caption
    assert all(v.dtype == torch.float32 for v in decoder.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in decoder.state_dict().items())


def test_decoding_on_the_gpu_matches_the_cpu(vocab, attention_kind):
    decoder = build_decoder(tiny_config(vocab, attention_kind)).eval()
    features = torch.rand(4, 9, 16)  # a 3x3 grid, as local attention needs
    with torch.inference_mode():
        on_cpu = search(decoder, features, beam_size=3, max_length=10)
        on_gpu = search(decoder.to(CUDA), features.to(CUDA), beam_size=3, max_length=10)
    for c, g in zip(on_cpu, on_gpu):
        assert c[0].tokens == g[0].tokens
        assert c[0].log_prob == pytest.approx(g[0].log_prob, abs=1e-3)


def test_auto_device_is_the_gpu(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert setup("auto", "bf16").device.type == "cuda"


def test_train_and_finetune_commands_on_the_gpu(tmp_path):
    data = make_dataset(tmp_path)
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--device", "cuda",
              "--precision", "bf16", "--batch-size", "4", "--log-every", "1",
              "--loader-workers", "2"]
    assert train_main([*common, "--out", str(tmp_path / "s1"), "--min-word-count", "1",
                       "--image-size", "64",
                       "--hidden-dim", "32", "--embed-dim", "16", "--attention-dim", "16",
                       "--max-steps", "6", "--compile"]) == 0
    first = load_checkpoint(tmp_path / "s1" / "last.pt")
    assert first.training["progress"]["step"] == 6
    assert finetune_main([*common, "--out", str(tmp_path / "s2"), "--init",
                          str(tmp_path / "s1" / "best.pt"), "--max-steps", "3"]) == 0
    second = load_checkpoint(tmp_path / "s2" / "last.pt")
    assert second.encoder is not None and second.training["progress"]["step"] == 3


def test_caching_on_the_gpu_matches_the_cpu(tmp_path):
    data = make_dataset(tmp_path)
    dataset = load_karpathy(data)
    paths = [r.path for r in dataset.images]
    on_cpu = build_cache(tmp_path / "cpu", dataset.image_root, paths, "efficientnet_lite0", 64,
                         workers=0)
    on_gpu = build_cache(tmp_path / "gpu", dataset.image_root, paths, "efficientnet_lite0", 64,
                         workers=0, device="cuda")
    assert np.allclose(on_cpu.features[:].astype(np.float32),
                       on_gpu.features[:].astype(np.float32), rtol=1e-2, atol=1e-2)
    assert torch.backends.cudnn.allow_tf32  # the default is back after caching
