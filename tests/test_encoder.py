"""The encoder's pretrained weights are the real ImageNet ones, loaded under timm's names."""
import pytest
import torch

from captioner.encoder import (ENCODERS, build_encoder, efficientnet_pytorch_to_timm,
                               preprocessing_for)
from captioner.images import load_image

from conftest import EXAMPLES

# ImageNet classes: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup.
CATS = {281, 282, 283, 284, 285}
COFFEE = {967, 968}


@pytest.fixture(scope="module")
def lite0():
    return build_encoder("efficientnet_lite0")


def test_pretrained_weights_classify_known_photos(lite0):
    preprocess = preprocessing_for("efficientnet_lite0", 224)
    pixels = preprocess.batch([load_image(EXAMPLES / "chelsea.jpg"),
                               load_image(EXAMPLES / "coffee.jpg")])
    with torch.inference_mode():
        probs = lite0.backbone.classify(pixels).softmax(dim=-1)
    top = probs.argmax(dim=-1).tolist()
    assert top[0] in CATS and top[1] in COFFEE
    # Confident, as real weights are; random or mis-mapped weights give near-uniform output.
    assert probs.max(dim=-1).values.min() > 0.5


def test_imagenet_labels_reuse_the_captioning_pass_and_are_named(lite0):
    """The top-5 shown beside a caption: the classifier on the annotations' mean is exactly the
    backbone's own head, and the names come from timm's label files."""
    from captioner import Captioner
    from captioner.imagenet import imagenet_names, top_labels

    preprocess = preprocessing_for("efficientnet_lite0", 224)
    pixels = preprocess.batch([load_image(EXAMPLES / "chelsea.jpg")])
    with torch.inference_mode():
        reused = lite0.imagenet_logits(lite0(pixels).features)
        own = lite0.backbone.classify(pixels)
    assert torch.allclose(reused, own, atol=1e-4)
    [labels] = top_labels(reused)
    assert len(labels) == 5 and labels[0].name == imagenet_names()[285] == "Egyptian cat"
    assert [l.probability for l in labels] == sorted((l.probability for l in labels), reverse=True)
    caption = Captioner.from_checkpoint().caption(EXAMPLES / "chelsea.jpg")[0]
    assert caption.imagenet[0].name == "Egyptian cat"
    assert caption.to_dict()["imagenet_top5"][0]["label"] == "Egyptian cat"


@pytest.mark.parametrize("size,grid", [(224, (7, 7)), (448, (14, 14))])
def test_grid_shapes(lite0, size, grid):
    with torch.inference_mode():
        out = lite0(torch.randn(2, 3, size, size))
    assert out.grid == grid
    assert out.features.shape == (2, grid[0] * grid[1], 1280)
    assert torch.isfinite(out.features).all()


def test_encoder_is_frozen_and_in_eval_mode(lite0):
    assert not lite0.training
    assert not any(p.requires_grad for p in lite0.parameters())


def test_key_mapping_covers_every_weight():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    fake_old = {"_conv_stem.weight": 1, "_bn0.bias": 2, "_blocks.0._depthwise_conv.weight": 3,
                "_blocks.1._expand_conv.weight": 4, "_blocks.1._project_conv.weight": 5,
                "_blocks.15._expand_conv.weight": 9, "_blocks.15._bn2.weight": 6,
                "_conv_head.weight": 7, "_fc.bias": 8}
    renamed = efficientnet_pytorch_to_timm(fake_old, [len(s) for s in model.blocks])
    assert renamed == {"conv_stem.weight": 1, "bn1.bias": 2, "blocks.0.0.conv_dw.weight": 3,
                       "blocks.1.0.conv_pw.weight": 4, "blocks.1.0.conv_pwl.weight": 5,
                       "blocks.6.0.conv_pw.weight": 9, "blocks.6.0.bn3.weight": 6, "conv_head.weight": 7, "classifier.bias": 8}
    assert set(renamed) <= set(model.state_dict())


def test_unknown_encoder_fails_loudly():
    with pytest.raises(ValueError, match="unknown encoder 'resnet9000'"):
        build_encoder("resnet9000")


def test_torchvision_encoder_needs_a_weights_file_and_never_downloads():
    assert ENCODERS["resnet101"].needs_weights_file
    with pytest.raises(ValueError, match="needs a weights file"):
        build_encoder("resnet101")


@pytest.mark.slow
def test_resnet101_from_user_weights_file(tmp_path):
    from torchvision.models import resnet101

    path = tmp_path / "resnet101.pth"
    torch.save(resnet101(weights=None).state_dict(), path)
    encoder = build_encoder("resnet101", str(path))
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, 224, 224))
    assert out.features.shape == (1, 49, 2048) and out.grid == (7, 7)
