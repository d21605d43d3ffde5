"""Soft and hard attention: interchangeable modules with one output type.

Both score every location with Bahdanau's additive alignment model
    e_ti = w^T tanh(W_a a_i + W_h h_{t-1}),   alpha_t = softmax(e_t)
and differ only in how they turn alpha_t into a context vector. The decoder never asks which
one it has; the training loss adds the REINFORCE term when `log_prob` is present.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:  # the config names its attention; only its type is needed here
    from .config import ModelConfig


class AttentionOutput(NamedTuple):
    context: torch.Tensor  # (B, D) the context vector z_t fed to the LSTM
    weights: torch.Tensor  # (B, L) alpha_t, sums to 1 over L
    # (B, L) how z_t mixes the annotations: z_t = sum_i mix_i a_i. alpha_t for soft attention,
    # one-hot at s_t for a hard location. Any linear map of z_t is then the same mix of that
    # map applied to the a_i, which lets decoding precompute those maps once per image.
    mix: torch.Tensor
    # (B,) log alpha_t[s_t] of the sampled location; None for soft attention and at inference.
    # Rows where the expected context replaced the sample hold 0 (no REINFORCE signal).
    log_prob: torch.Tensor | None = None


class AdditiveScorer(nn.Module):
    """alpha_t from the annotations' projection W_a a_i (precomputed once per image) and h."""

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.image_proj = nn.Linear(encoder_dim, attention_dim)  # W_a
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_h
        self.score = nn.Linear(attention_dim, 1)  # w

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_proj(features)  # (B, L, A): computed once, reused at every step

    def forward(self, projected: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """projected (B, L, A), hidden (B*k, n) -> alpha (B*k, L); rows n*k.. read image n."""
        images, locations, dim = projected.shape
        query = self.hidden_proj(hidden).view(images, -1, 1, dim)  # (B, k, 1, A)
        energy = torch.tanh(projected.unsqueeze(1) + query)  # (B, k, L, A)
        return self.score(energy).squeeze(-1).softmax(dim=-1).view(-1, locations)


class SoftAttention(nn.Module):
    """Deterministic attention: context = sum_i alpha_ti a_i, trained end to end by backprop."""

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.scorer = AdditiveScorer(encoder_dim, hidden_dim, attention_dim)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer.project(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor,
                hidden: torch.Tensor) -> AttentionOutput:
        """features (B, L, D), projected (B, L, A), hidden (B*k, n): k rows per image."""
        alpha = self.scorer(projected, hidden)  # (B*k, L)
        return AttentionOutput(mix_rows(alpha, features), alpha, alpha)


class HardAttention(nn.Module):
    """Stochastic attention: one location s_t ~ Multinoulli(alpha_t), context = a_{s_t}.

    Training (module.training): sample s_t and return its log-probability for REINFORCE; with
    probability `expectation_prob` per row use the expected context instead (paper sec. 4.1,
    which reduces the estimator's variance). Inference: the argmax location (one region per
    word) or the expectation, chosen by `inference`.
    """

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int,
                 inference: str = "argmax", expectation_prob: float = 0.5):
        super().__init__()
        self.scorer = AdditiveScorer(encoder_dim, hidden_dim, attention_dim)
        self.inference = inference
        self.expectation_prob = expectation_prob

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer.project(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor,
                hidden: torch.Tensor) -> AttentionOutput:
        """features (B, L, D), projected (B, L, A), hidden (B*k, n): k rows per image."""
        alpha = self.scorer(projected, hidden)  # (B*k, L)
        if not self.training:
            if self.inference == "expectation":
                return AttentionOutput(mix_rows(alpha, features), alpha, alpha)
            mix = _one_hot(alpha.argmax(dim=1), alpha)  # one region per word
            return AttentionOutput(mix_rows(mix, features), alpha, mix)
        location = torch.multinomial(alpha.detach(), 1).squeeze(1)  # (B,)
        use_expectation = torch.rand(alpha.shape[0], device=alpha.device) < self.expectation_prob
        # Sampled rows take a_{s_t} (no gradient through alpha: REINFORCE trains it);
        # expectation rows take sum_i alpha_i a_i, trained by backprop.
        mix = torch.where(use_expectation.unsqueeze(1), alpha, _one_hot(location, alpha))
        log_prob = alpha.gather(1, location.unsqueeze(1)).squeeze(1).clamp_min(1e-12).log()
        log_prob = log_prob.masked_fill(use_expectation, 0.0)
        return AttentionOutput(mix_rows(mix, features), alpha, mix, log_prob)


def mix_rows(mix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """sum_i mix_i rows_i: mix (B*k, L), rows (B, L, X) -> (B*k, X), rows n*k.. mixing image n.

    Beam search keeps one copy of each image's tensors for its k beams instead of k copies:
    less memory traffic, which is what a decoding step on a CPU waits for.
    """
    images, locations, dim = rows.shape
    return torch.bmm(mix.view(images, -1, locations), rows).view(-1, dim)


def _one_hot(location: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).scatter_(1, location.unsqueeze(1), 1.0)


# The attention registry: name -> builder(config) -> module. The model config's check, the
# training CLI's --attention choices and the tests' parametrisation all read this one dict,
# so a new attention is one module plus one `register_attention` entry.
ATTENTIONS: dict[str, Callable[["ModelConfig"], nn.Module]] = {}


def register_attention(name: str):
    def register(builder: Callable[["ModelConfig"], nn.Module]):
        if name in ATTENTIONS:
            raise ValueError(f"attention {name!r} is already registered")
        ATTENTIONS[name] = builder
        return builder
    return register


@register_attention("soft")
def _soft(config: "ModelConfig") -> nn.Module:
    return SoftAttention(config.encoder_dim, config.hidden_dim, config.attention_dim)


@register_attention("hard")
def _hard(config: "ModelConfig") -> nn.Module:
    return HardAttention(config.encoder_dim, config.hidden_dim, config.attention_dim,
                         config.hard_inference)


def build_attention(config: "ModelConfig") -> nn.Module:
    if config.attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {config.attention!r}; choose one of "
                         f"{', '.join(ATTENTIONS)}")
    return ATTENTIONS[config.attention](config)
