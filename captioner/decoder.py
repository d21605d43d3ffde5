"""The LSTM decoder of Show, Attend and Tell, built around one `step()`.

Greedy decoding, beam search and sampling (captioner.decoding) advance the decoder through
`step`; teacher forcing runs the same two halves of it (`advance`, `readout`), so there is
exactly one definition of a decoding step.
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
    """Show, Attend and Tell's decoder. One decoding step is `advance` (attend, gate, LSTM)
    followed by `readout` (deep output layer); `step` is exactly that pair. Teacher forcing
    runs `advance` per time step and `readout` once over all steps (one large matrix product
    instead of T small ones: same numbers, less time)."""

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
        # The LSTM's affine map T_{D+m+n, 4n} of [E y_{t-1}; z_t; h_{t-1}], split so the word
        # part can be computed for all time steps at once during teacher forcing.
        self.word_gates = nn.Linear(m, 4 * n)
        self.recurrent_gates = nn.Linear(d + n, 4 * n, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        # Deep output layer: p(y_t) ~ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t))
        self.out_hidden = nn.Linear(n, m)  # L_h
        self.out_context = nn.Linear(d, m)  # L_z
        self.out = nn.Linear(m, v)  # L_o
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():  # forget-gate bias 1: remember by default early in training
            self.word_gates.bias[n:2 * n].fill_(1.0)

    def prepare(self, features: torch.Tensor) -> Memory:
        return Memory(features, self.attention.project(features))

    def init_state(self, memory: Memory) -> DecoderState:
        mean = memory.features.mean(dim=1)  # (B, D)
        return DecoderState(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        """Read word y_{t-1} (B,), attend with h_{t-1}, update the LSTM, score word y_t."""
        embedded = self.embedding(tokens)  # (B, m)
        state, attended, context = self.advance(self.word_gates(embedded), state, memory)
        return StepOutput(self.readout(embedded, state.h, context), state, attended)

    def advance(self, word_gates: torch.Tensor, state: DecoderState, memory: Memory
                ) -> tuple[DecoderState, AttentionOutput, torch.Tensor]:
        """Attend with h_{t-1}, gate the context, run the LSTM cell. word_gates: (B, 4n)."""
        attended = self.attention(memory.features, memory.projected, state.h)
        context = attended.context  # (B, D)
        if self.gate is not None:
            context = torch.sigmoid(self.gate(state.h)) * context  # beta_t * z_t
        gates = word_gates + self.recurrent_gates(torch.cat([context, state.h], dim=1))
        i, f, g, o = gates.chunk(4, dim=1)  # (B, n) each
        c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return DecoderState(h, c), attended, context

    def readout(self, embedded: torch.Tensor, h: torch.Tensor, context: torch.Tensor
                ) -> torch.Tensor:
        """Deep output layer over (..., m), (..., n), (..., D) -> logits (..., V)."""
        # tanh on the sum follows the authors' code (arctic-captions).
        deep = torch.tanh(embedded + self.out_hidden(self.dropout(h)) + self.out_context(context))
        return self.out(self.dropout(deep))

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> TeacherForcedOutput:
        """Teacher forcing over captions (B, T+1) that start with <start>; predicts captions[:, 1:]."""
        memory = self.prepare(features)
        state = self.init_state(memory)
        embedded = self.embedding(captions[:, :-1])  # (B, T, m)
        word_gates = self.word_gates(embedded)  # (B, T, 4n): one product for all steps
        hs, contexts, alphas, log_probs = [], [], [], []
        for t in range(embedded.shape[1]):
            state, attended, context = self.advance(word_gates[:, t], state, memory)
            hs.append(state.h)
            contexts.append(context)
            alphas.append(attended.weights)
            if attended.log_prob is not None:
                log_probs.append(attended.log_prob)
        logits = self.readout(embedded, torch.stack(hs, 1), torch.stack(contexts, 1))
        return TeacherForcedOutput(logits, torch.stack(alphas, 1),
                                   torch.stack(log_probs, 1) if log_probs else None)
