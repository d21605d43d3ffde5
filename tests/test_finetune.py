"""Second stage: fine-tuning the encoder's top blocks from images, on the generated dataset."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from captioner import Captioner, load_checkpoint
from captioner.checkpoint import CheckpointError
from captioner.encoder import build_encoder, top_blocks
from training.evaluate import main as evaluate_main
from training.export import main as export_main
from training.finetune import main as finetune_main
from training.train import main as train_main

from fixture_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--log-every", "1", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    data = make_dataset(root)
    out = root / "stage1"
    assert train_main(["--data", str(data), "--cache-dir", str(root / "cache"), "--out", str(out),
                       "--image-size", "64", "--embed-dim", "16", "--hidden-dim", "32",
                       "--attention-dim", "16", "--dropout", "0", "--min-word-count", "1",
                       "--batch-size", "4", "--max-steps", "4", *COMMON]) == 0
    return data, out / "best.pt"


@pytest.mark.slow
def test_finetuning_trains_only_the_top_blocks_and_ships_them(first_stage, tmp_path, capsys):
    data, init = first_stage
    out = tmp_path / "ft"
    code = finetune_main(["--data", str(data), "--init", str(init), "--out", str(out),
                          "--finetune-blocks", "1", "--encoder-lr", "0.01", "--lr", "0.001",
                          "--batch-size", "4", "--max-steps", "3", "--loader-workers", "0",
                          "--checkpoint-every", "1", *COMMON])
    assert code == 0, capsys.readouterr().err
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint.training["progress"]["step"] == 3
    assert checkpoint.encoder is not None
    pretrained = build_encoder("efficientnet_lite0").backbone.state_dict()
    tuned = build_encoder("efficientnet_lite0", state_dict=checkpoint.encoder)
    top = {id(p) for block in top_blocks(tuned, 1) for p in block.parameters()}
    changed, unchanged = [], []
    for name, param in tuned.backbone.named_parameters():
        (changed if not torch.equal(param, pretrained[name]) else unchanged).append(
            (name, id(param) in top))
    assert changed and all(in_top for _, in_top in changed)  # only the top block moved
    assert any(not in_top for _, in_top in unchanged)
    # Batch-norm statistics stay the pretrained ones.
    assert all(torch.equal(v, pretrained[k]) for k, v in checkpoint.encoder.items()
               if k.endswith("running_mean"))
    # Inference uses the fine-tuned encoder the checkpoint carries.
    captioner = Captioner.from_checkpoint(out / "last.pt")
    for name, value in captioner.encoder.backbone.state_dict().items():
        assert torch.equal(value, checkpoint.encoder[name].to(value.dtype)), name
    assert captioner.caption(data.parent / "images" / "000_red_circle.png")[0].words
    # Evaluation encodes the images with the fine-tuned encoder, not a pretrained cache.
    result_path = tmp_path / "test.json"
    assert evaluate_main(["--checkpoint", str(out / "last.pt"), "--data", str(data),
                          "--split", "test", "--beam", "2", "--cache-dir", str(tmp_path / "c"),
                          "--out", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    for row in result["captions"]:
        expected = captioner.caption(data.parent / "images" / row["image"], beam_size=2)[0]
        assert row["caption"] == expected.text
    assert not (tmp_path / "c").exists()  # no feature cache was built for it
    # Export ships only the tensors fine-tuning changed; the package's weights fill in the rest.
    shipped = tmp_path / "shipped.pt"
    assert export_main(["--checkpoint", str(out / "last.pt"), "--out", str(shipped)]) == 0
    exported = load_checkpoint(shipped)
    assert exported.encoder_base == "pretrained"
    assert 0 < len(exported.encoder) < len(checkpoint.encoder)
    # The run's own model.pt (its best.pt, slim) ships the same way and opens as any model.
    model = load_checkpoint(out / "model.pt")
    assert model.training is None and model.encoder_base == "pretrained"
    assert 0 < len(model.encoder) < len(checkpoint.encoder)
    assert Captioner.from_checkpoint(out / "model.pt").caption(
        data.parent / "images" / "000_red_circle.png")[0].words
    assert {k for k, _ in changed} <= set(exported.encoder)  # every moved weight travels
    assert not any(k.endswith("running_mean") for k in exported.encoder)
    light = Captioner.from_checkpoint(shipped)
    for name, value in light.encoder.backbone.state_dict().items():
        assert torch.allclose(value.float(), checkpoint.encoder[name].float(), rtol=1e-3,
                              atol=1e-3), name
    photo = data.parent / "images" / "000_red_circle.png"
    assert light.caption(photo)[0].words == captioner.caption(photo)[0].words
    # A partial encoder naming a tensor the architecture lacks is refused, not half-loaded.
    raw = torch.load(shipped, weights_only=True)
    raw["encoder"]["blocks.99.weight"] = torch.zeros(1)
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="blocks.99.weight"):
        Captioner.from_checkpoint(tmp_path / "bad.pt")


def test_init_takes_a_shipped_model_by_name():
    from captioner.inference import DEFAULT_CHECKPOINTS
    from training.config import FinetuneConfig
    from training.runner import starting_checkpoint

    checkpoint, name = starting_checkpoint(FinetuneConfig(init="soft"), None)
    assert name == "soft"
    assert checkpoint.config == load_checkpoint(DEFAULT_CHECKPOINTS["soft"]).config


@pytest.mark.slow
def test_finetuning_resumes_and_needs_a_starting_checkpoint(first_stage, tmp_path):
    data, init = first_stage
    out = tmp_path / "ft"
    args = ["--data", str(data), "--out", str(out), "--finetune-blocks", "1",
            "--batch-size", "4", "--loader-workers", "1", "--checkpoint-every", "1", *COMMON]
    missing = subprocess.run([sys.executable, "-m", "training.finetune", *args, "--max-steps", "1"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--init is required" in missing.stderr
    assert finetune_main([*args, "--init", str(init), "--max-steps", "2"]) == 0
    assert finetune_main([*args, "--resume", "--max-steps", "4"]) == 0
    assert load_checkpoint(out / "last.pt").training["progress"]["step"] == 4
