"""The attention family: interchangeable modules with one output type.

An attention scores every location i of the image's grid, alpha_t = softmax(e_t), and turns
alpha_t into a context vector. The registry below holds the variants, each with the decoder
state it scores with:
- "previous" (Bahdanau; Xu et al.): h_{t-1}, before the LSTM step, and the context feeds the
  LSTM. soft and hard use the additive model e_ti = w^T tanh(W_a a_i + W_h h_{t-1}) and differ
  only in how alpha_t becomes a context (a weighted mean, or one sampled location trained by
  REINFORCE); static drops the state: e_ti = u^T tanh(W a_i + b).
- "current" (Luong et al. 2015): h_t, after the LSTM step, and the context makes the
  attentional state that predicts the word (captioner.luong). luong-dot, luong-general and
  luong-concat differ in the score; local attends only inside a window around a predicted centre.
The decoder never asks which one it has; the training loss adds the REINFORCE term when
`log_prob` is present. Every attention's forward takes (features, projected, hidden, mode,
temperature): decoding may divide the scores by a temperature before the softmax
(`tempered_softmax`; ModelConfig.attention_temperature). An attention that maps the state
linearly before scoring names that layer `query_layer` (else None) and takes its output as
`query`: decoding computes it in one product with the decoder's other maps of the same state
(captioner.fused).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Protocol

import torch
from torch import nn


class AttentionConfig(Protocol):
    """What an attention is built from: the fields of captioner.config.ModelConfig that the
    builders read (declared here so that the config, which checks its attention's name
    against ATTENTIONS, is the only one of the two modules to import the other)."""

    attention: str
    encoder_dim: int
    hidden_dim: int
    attention_dim: int
    hard_inference: str
    local_window: float


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

    @property
    def query_layer(self) -> nn.Linear:
        return self.hidden_proj

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_proj(features)  # (B, L, A): computed once, reused at every step

    def forward(self, projected: torch.Tensor, hidden: torch.Tensor,
                temperature: float = 1.0, query: torch.Tensor | None = None) -> torch.Tensor:
        """projected (B, L, A), hidden (B*k, n) -> alpha (B*k, L); rows n*k.. read image n.
        query: W_h hidden when the caller has it (B*k, A)."""
        images, locations, dim = projected.shape
        if query is None:
            query = self.hidden_proj(hidden)
        query = query.view(images, -1, 1, dim)  # (B, k, 1, A)
        energy = torch.tanh(projected.unsqueeze(1) + query)  # (B, k, L, A)
        return tempered_softmax(self.score(energy).squeeze(-1), temperature).view(-1, locations)


class StaticScorer(nn.Module):
    """alpha from the annotations alone: e_i = u^T tanh(W a_i + b) with a learned query u
    (Yang et al. 2016). The weights are the same at every step, whatever has been said."""

    def __init__(self, encoder_dim: int, attention_dim: int):
        super().__init__()
        self.image_proj = nn.Linear(encoder_dim, attention_dim)  # W, b
        self.score = nn.Linear(attention_dim, 1, bias=False)  # u

    query_layer = None

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_proj(features)

    def forward(self, projected: torch.Tensor, hidden: torch.Tensor,
                temperature: float = 1.0, query: None = None) -> torch.Tensor:
        images, locations, _ = projected.shape
        alpha = tempered_softmax(self.score(torch.tanh(projected)).squeeze(-1), temperature)
        rows_per_image = hidden.shape[0] // images
        return alpha.unsqueeze(1).expand(-1, rows_per_image, -1).reshape(-1, locations)


class BilinearScorer(nn.Module):
    """Luong's multiplicative score e_ti = h^T W a_i: W a_i (B, L, n) precomputed per image,
    then one batched dot product per step."""

    def __init__(self, encoder_dim: int, hidden_dim: int, bias: bool = False):
        super().__init__()
        # A bias adds h^T b to every location alike, which the softmax cancels; the dot
        # variant keeps it because its projections are also the values it averages.
        self.image_proj = nn.Linear(encoder_dim, hidden_dim, bias=bias)

    query_layer = None  # h itself is the query

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_proj(features)

    def energies(self, projected: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, n), (B*k, n) -> e (B*k, L)."""
        images, locations, dim = projected.shape
        query = hidden.view(images, -1, dim)  # (B, k, n)
        return torch.bmm(query, projected.transpose(1, 2)).view(-1, locations)

    def forward(self, projected: torch.Tensor, hidden: torch.Tensor,
                temperature: float = 1.0, query: None = None) -> torch.Tensor:
        return tempered_softmax(self.energies(projected, hidden), temperature)


class SoftAttention(nn.Module):
    """Deterministic attention: context = sum_i alpha_ti v_i, trained end to end by backprop.
    The values v_i are the annotations a_i, or (values_projected) the scorer's projections of
    them, as in Luong's dot attention where one projection serves as both key and value."""

    def __init__(self, scorer: nn.Module, values_projected: bool = False):
        super().__init__()
        self.scorer = scorer
        self.values_projected = values_projected

    @property
    def query_layer(self) -> nn.Linear | None:
        return self.scorer.query_layer

    def values(self, features: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        return projected if self.values_projected else features

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer.project(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor,
                hidden: torch.Tensor, mode: str | None = None,
                temperature: float = 1.0, query: torch.Tensor | None = None
                ) -> AttentionOutput:
        """features (B, L, D), projected (B, L, A), hidden (B*k, n): k rows per image."""
        alpha = self.scorer(projected, hidden, temperature, query)  # (B*k, L)
        return AttentionOutput(mix_rows(alpha, self.values(features, projected)), alpha, alpha)


class LocalAttention(nn.Module):
    """Luong's local-p attention on the image's grid (square, H = W = sqrt(L)).

    The state predicts a centre p = (H, W) * sigmoid(V tanh(W_p h)) in grid units (cell (r, c)
    spans [r, r+1) x [c, c+1), so its centre is (r + 0.5, c + 0.5)); only cells whose centres
    lie within +-D of p in both directions are attended, scored h^T W_a a_i and weighted by the
    Gaussian exp(-||s - p||^2 / (2 sigma^2)), sigma = D / 2, renormalised inside the window:
    alpha_i = softmax over the window of (e_i - ||s_i - p||^2 / (2 sigma^2)). The Gaussian makes
    alpha differentiable in p, so it trains like soft attention; the window's edge is not
    (as in Luong et al.). With D >= 0.5 the window always holds the cell under p.
    """

    values_projected = False  # the context averages the annotations themselves

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int, window: float):
        super().__init__()
        if window < 0.5:
            raise ValueError(f"local attention's window must be at least 0.5 cells, got {window}")
        self.scorer = BilinearScorer(encoder_dim, hidden_dim)
        self.position = nn.Sequential(nn.Linear(hidden_dim, attention_dim, bias=False),
                                      nn.Tanh(), nn.Linear(attention_dim, 2, bias=False))
        self.window = window
        self.sigma = window / 2

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer.project(features)

    def values(self, features: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        return features

    @property
    def query_layer(self) -> nn.Linear:
        return self.position[0]  # W_p

    def centre(self, hidden: torch.Tensor, side: int,
               query: torch.Tensor | None = None) -> torch.Tensor:
        """p_t (B*k, 2) as (y, x) in grid units, each in [0, side]; query: W_p h if known."""
        if query is None:
            return side * torch.sigmoid(self.position(hidden))
        return side * torch.sigmoid(self.position[1:](query))

    def forward(self, features: torch.Tensor, projected: torch.Tensor,
                hidden: torch.Tensor, mode: str | None = None,
                temperature: float = 1.0, query: torch.Tensor | None = None
                ) -> AttentionOutput:
        locations = projected.shape[1]
        side = math.isqrt(locations)
        if side * side != locations:
            raise ValueError(f"local attention needs a square grid, got {locations} locations")
        centre = self.centre(hidden, side, query)  # (B*k, 2)
        cells = torch.arange(side, device=hidden.device, dtype=hidden.dtype) + 0.5
        offset_y = cells.view(1, side, 1) - centre[:, 0].view(-1, 1, 1)  # (B*k, side, 1)
        offset_x = cells.view(1, 1, side) - centre[:, 1].view(-1, 1, 1)  # (B*k, 1, side)
        squared = (offset_y ** 2 + offset_x ** 2).view(-1, locations)
        inside = ((offset_y.abs() <= self.window) & (offset_x.abs() <= self.window)).view(-1, locations)
        energy = self.scorer.energies(projected, hidden) - squared / (2 * self.sigma ** 2)
        alpha = tempered_softmax(energy.masked_fill(~inside, float("-inf")), temperature)
        return AttentionOutput(mix_rows(alpha, features), alpha, alpha)


class HardAttention(nn.Module):
    """Stochastic attention: one location s_t ~ Multinoulli(alpha_t), context = a_{s_t}.

    Training (module.training): sample s_t and return its log-probability for REINFORCE; with
    probability `expectation_prob` per row use the expected context instead (paper sec. 4.1,
    which reduces the estimator's variance). Not training, `mode` (else `inference`, the
    checkpoint's) picks: "argmax" (one region per word), "expectation" (sum_i alpha_i a_i, how
    the paper's code scored its hard model) or "sample" (s_t drawn from alpha, with its
    log-probability, as in training but never the expectation).
    """

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int,
                 inference: str = "argmax", expectation_prob: float = 0.5):
        super().__init__()
        self.scorer = AdditiveScorer(encoder_dim, hidden_dim, attention_dim)
        self.inference = inference
        self.expectation_prob = expectation_prob

    @property
    def query_layer(self) -> nn.Linear:
        return self.scorer.query_layer

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer.project(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor,
                hidden: torch.Tensor, mode: str | None = None,
                temperature: float = 1.0, query: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> AttentionOutput:
        """features (B, L, D), projected (B, L, A), hidden (B*k, n): k rows per image;
        generator: what the locations are drawn from (None: torch's default)."""
        alpha = self.scorer(projected, hidden, temperature, query)  # (B*k, L)
        mode = "train" if self.training else (mode or self.inference)
        if mode == "expectation":
            return AttentionOutput(mix_rows(alpha, features), alpha, alpha)
        if mode == "argmax":
            mix = _one_hot(alpha.argmax(dim=1), alpha)  # one region per word
            return AttentionOutput(mix_rows(mix, features), alpha, mix)
        location = torch.multinomial(alpha.detach(), 1, generator=generator).squeeze(1)  # (B,)
        log_prob = alpha.gather(1, location.unsqueeze(1)).squeeze(1).clamp_min(1e-12).log()
        if mode == "sample":
            mix = _one_hot(location, alpha)
            return AttentionOutput(mix_rows(mix, features), alpha, mix, log_prob)
        use_expectation = torch.rand(alpha.shape[0], device=alpha.device) < self.expectation_prob
        # Sampled rows take a_{s_t} (no gradient through alpha: REINFORCE trains it);
        # expectation rows take sum_i alpha_i a_i, trained by backprop.
        mix = torch.where(use_expectation.unsqueeze(1), alpha, _one_hot(location, alpha))
        log_prob = log_prob.masked_fill(use_expectation, 0.0)
        return AttentionOutput(mix_rows(mix, features), alpha, mix, log_prob)


def tempered_softmax(energies: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(e / T) over the locations (last dim). T below 1 sharpens the map: the model
    trains at 1, and decoding may sharpen (ModelConfig.attention_temperature)."""
    return (energies if temperature == 1.0 else energies / temperature).softmax(dim=-1)


def mix_rows(mix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """sum_i mix_i rows_i: mix (B*k, L), rows (B, L, X) -> (B*k, X), rows n*k.. mixing image n.

    Beam search keeps one copy of each image's tensors for its k beams instead of k copies:
    less memory traffic, which is what a decoding step on a CPU waits for.
    """
    images, locations, dim = rows.shape
    return torch.bmm(mix.view(images, -1, locations), rows).view(-1, dim)


def _one_hot(location: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).scatter_(1, location.unsqueeze(1), 1.0)


QUERIES = ("previous", "current")  # which decoder state scores: h_{t-1} or h_t
# How the overlays draw its maps: a heat map, the one cell it chose (when decoded at the
# argmax location, config.hard_inference), or the heat map with its window outlined.
OVERLAYS = ("heatmap", "cell", "window")


class AttentionEntry(NamedTuple):
    build: Callable[[AttentionConfig], nn.Module]
    query: str  # one of QUERIES; picks the decoder (captioner.build.DECODERS)
    overlay: str = "heatmap"  # one of OVERLAYS (captioner.overlay.map_style)
    # It samples its locations and learns them by REINFORCE (AttentionOutput.log_prob), so
    # training adds the entropy bonus to its policy-gradient terms.
    reinforce: bool = False


# The attention registry: name -> entry. The model config's check, the training CLI's
# --attention choices, the decoder factory, the overlays, the training losses and the tests'
# parametrisation all read this one dict, so a new attention is one module plus one
# `register_attention` entry.
ATTENTIONS: dict[str, AttentionEntry] = {}


def register_attention(name: str, query: str = "previous", overlay: str = "heatmap",
                       reinforce: bool = False):
    if query not in QUERIES:
        raise ValueError(f"query must be one of {', '.join(QUERIES)}; got {query!r}")
    if overlay not in OVERLAYS:
        raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}; got {overlay!r}")

    def register(builder: Callable[[AttentionConfig], nn.Module]):
        if name in ATTENTIONS:
            raise ValueError(f"attention {name!r} is already registered")
        ATTENTIONS[name] = AttentionEntry(builder, query, overlay, reinforce)
        return builder
    return register


@register_attention("soft")
def _soft(config: AttentionConfig) -> nn.Module:
    return SoftAttention(AdditiveScorer(config.encoder_dim, config.hidden_dim,
                                        config.attention_dim))


@register_attention("hard", overlay="cell", reinforce=True)
def _hard(config: AttentionConfig) -> nn.Module:
    return HardAttention(config.encoder_dim, config.hidden_dim, config.attention_dim,
                         config.hard_inference)


@register_attention("static")
def _static(config: AttentionConfig) -> nn.Module:
    return SoftAttention(StaticScorer(config.encoder_dim, config.attention_dim))


@register_attention("luong-dot", query="current")
def _luong_dot(config: AttentionConfig) -> nn.Module:
    # a_i projected to the hidden size (W_p a_i) is both what h_t is dotted with and what the
    # context averages, so the context lives in the state's space.
    return SoftAttention(BilinearScorer(config.encoder_dim, config.hidden_dim, bias=True),
                         values_projected=True)


@register_attention("luong-general", query="current")
def _luong_general(config: AttentionConfig) -> nn.Module:
    return SoftAttention(BilinearScorer(config.encoder_dim, config.hidden_dim))


@register_attention("luong-concat", query="current")
def _luong_concat(config: AttentionConfig) -> nn.Module:
    # v^T tanh(W [h_t; a_i]) = v^T tanh(W_h h_t + W_a a_i): the additive score, fed h_t.
    return SoftAttention(AdditiveScorer(config.encoder_dim, config.hidden_dim,
                                        config.attention_dim))


@register_attention("local", query="current", overlay="window")
def _local(config: AttentionConfig) -> nn.Module:
    return LocalAttention(config.encoder_dim, config.hidden_dim, config.attention_dim,
                          config.local_window)


def attention_entry(name: str) -> AttentionEntry:
    if name not in ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; choose one of {', '.join(ATTENTIONS)}")
    return ATTENTIONS[name]


def build_attention(config: AttentionConfig) -> nn.Module:
    return attention_entry(config.attention).build(config)
