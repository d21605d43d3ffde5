"""The LSTM decoder of Show, Attend and Tell, built around one `step()`.

Teacher forcing (forward), greedy decoding, beam search and sampling (captioner.decoding) all
advance the decoder through `step`, so there is exactly one definition of a decoding step.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .attention import AttentionOutput, build_attention
from .config import ModelConfig


class Memory(NamedTuple):
    """What the decoder attends over, prepared once per image."""

    features: torch.Tensor  # (B, L, D) annotation vectors
    projected: torch.Tensor  # (B, L, A) W_a a_i, so each step only adds W_h h

    def select(self, rows: torch.Tensor) -> "Memory":
        return Memory(self.features.index_select(0, rows), self.projected.index_select(0, rows))


class DecoderState(NamedTuple):
    h: torch.Tensor  # (B, n)
    c: torch.Tensor  # (B, n)

    def select(self, rows: torch.Tensor) -> "DecoderState":
        return DecoderState(self.h.index_select(0, rows), self.c.index_select(0, rows))


class StepOutput(NamedTuple):
    logits: torch.Tensor  # (B, V) unnormalised scores of the next word
    state: DecoderState
    attention: AttentionOutput


class TeacherForcedOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V) for predicting captions[:, 1:]
    alphas: torch.Tensor  # (B, T, L)
    log_probs: torch.Tensor | None  # (B, T) log p(s_t) of sampled locations (hard attention)


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 4:
            raise ValueError("config.vocab_size must be set from the vocabulary")
        self.config = config
        d, n, m, v = config.encoder_dim, config.hidden_dim, config.embed_dim, config.vocab_size
        self.embedding = nn.Embedding(v, m)  # E
        self.init_h = nn.Linear(d, n)  # f_init,h over the mean annotation
        self.init_c = nn.Linear(d, n)  # f_init,c
        self.attention = build_attention(config.attention, d, n, config.attention_dim,
                                         config.hard_inference)
        gate_width = {"scalar": 1, "channel": d, "none": 0}[config.gate]
        self.gate = nn.Linear(n, gate_width) if gate_width else None  # f_beta
        self.lstm = nn.LSTMCell(m + d, n)
        self.dropout = nn.Dropout(config.dropout)
        # Deep output layer: p(y_t) ~ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t))
        self.out_hidden = nn.Linear(n, m)  # L_h
        self.out_context = nn.Linear(d, m)  # L_z
        self.out = nn.Linear(m, v)  # L_o
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def prepare(self, features: torch.Tensor) -> Memory:
        return Memory(features, self.attention.project(features))

    def init_state(self, memory: Memory) -> DecoderState:
        mean = memory.features.mean(dim=1)  # (B, D)
        return DecoderState(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        """Read word y_{t-1} (B,), attend with h_{t-1}, update the LSTM, score word y_t."""
        embedded = self.embedding(tokens)  # (B, m)
        attended = self.attention(memory.features, memory.projected, state.h)
        context = attended.context  # (B, D)
        if self.gate is not None:
            context = torch.sigmoid(self.gate(state.h)) * context  # beta_t * z_t
        h, c = self.lstm(torch.cat([embedded, context], dim=1), state)
        # tanh on the deep output's sum follows the authors' code (arctic-captions).
        deep = torch.tanh(embedded + self.out_hidden(self.dropout(h)) + self.out_context(context))
        logits = self.out(self.dropout(deep))  # (B, V)
        return StepOutput(logits, DecoderState(h, c), attended)

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> TeacherForcedOutput:
        """Teacher forcing over captions (B, T+1) that start with <start>; predicts captions[:, 1:]."""
        memory = self.prepare(features)
        state = self.init_state(memory)
        logits, alphas, log_probs = [], [], []
        for t in range(captions.shape[1] - 1):
            out = self.step(captions[:, t], state, memory)
            state = out.state
            logits.append(out.logits)
            alphas.append(out.attention.weights)
            if out.attention.log_prob is not None:
                log_probs.append(out.attention.log_prob)
        return TeacherForcedOutput(torch.stack(logits, 1), torch.stack(alphas, 1),
                                   torch.stack(log_probs, 1) if log_probs else None)
