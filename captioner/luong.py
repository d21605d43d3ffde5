"""Luong et al.'s (2015) decoder: the LSTM steps first, then its current state h_t attends.

    h_t = LSTM([E y_{t-1}; h~_{t-1}], h_{t-1})      (h~_{t-1}: input feeding, a config flag)
    alpha_t = align(h_t, a_i),  c_t = sum_i alpha_ti v_i
    h~_t = tanh(W_c [c_t; h_t]),   p(y_t) = softmax(W_s h~_t)

Input feeding gives the LSTM the attentional state of the step before, so it knows where it
looked and what it concluded; without it the LSTM sees the image only through its initial state.

Its decoding StepLayers (captioner.fused): `before` maps [h_{t-1}; h~_{t-1}] (h_{t-1} alone
without input feeding) to the LSTM's state gates, `after` maps h_t to [W_c's state part (n) |
the attention's query (A), when it has one], `out` is W_s.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionOutput, mix_rows
from .config import ModelConfig
from .decoder import Decoder, DecoderState, Memory, StepOutput, per_row
from .fused import StepLayers, linear, stacked_linear


class LuongDecoder(Decoder):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        n = config.hidden_dim
        context_dim = n if self.attention.values_projected else config.encoder_dim
        self.feed_gates = nn.Linear(n, 4 * n, bias=False) if config.input_feeding else None
        # W_c [c_t; h_t] split by input: the context part is a mix of per-location rows
        # when decoding (Memory.out_rows), exact because it is linear.
        self.combine_context = nn.Linear(context_dim, n, bias=False)
        self.combine_hidden = nn.Linear(n, n)
        self.out = nn.Linear(n, config.vocab_size)  # W_s

    def prepare(self, features: torch.Tensor, decoding: bool = False,
                hard_mode: str | None = None, temperature: float | None = None,
                concepts: torch.Tensor | None = None) -> Memory:
        memory = super().prepare(features, decoding, hard_mode=hard_mode,
                                 temperature=temperature, concepts=concepts)
        if decoding:
            values = self.attention.values(features, memory.projected)
            memory = memory._replace(out_rows=self.combine_context(values))
        return memory

    def init_state(self, memory: Memory) -> DecoderState:
        state = super().init_state(memory)
        if self.feed_gates is None:
            return state
        return state._replace(attentional=torch.zeros_like(state.h))  # h~_0 = 0

    def build_step_layers(self) -> StepLayers:
        quantized = self.quantized
        if self.feed_gates is None:
            before = stacked_linear([self.hidden_gates], quantized)
        else:  # [W_hh W_feed] [h; h~]: one product over both states
            before = linear(torch.cat([self.hidden_gates.weight, self.feed_gates.weight], 1),
                            quantized=quantized)
        after = [self.combine_hidden, self.query_layer]
        after = [layer for layer in after if layer is not None]
        return StepLayers(self.word_gate_table(), before, (4 * self.config.hidden_dim,),
                          stacked_linear(after, quantized),
                          tuple(layer.out_features for layer in after),
                          stacked_linear([self.out], quantized))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        """Read word y_{t-1} (B,), step the LSTM, attend with h_t, score word y_t."""
        embedded = self.embedding(tokens) if memory.layers is None else None
        state, attended, (attentional,) = self.advance(
            self.word_gates_of(tokens, embedded, memory), state, memory)
        return StepOutput(self.readout(attentional, memory.layers), state, attended)

    def advance(self, word_gates: torch.Tensor, state: DecoderState, memory: Memory
                ) -> tuple[DecoderState, AttentionOutput, tuple[torch.Tensor]]:
        layers = memory.layers
        if layers is None:
            gates = word_gates + self.hidden_gates(state.h)
            if self.feed_gates is not None:
                gates = gates + self.feed_gates(state.attentional)
        else:
            inputs = (state.h if self.feed_gates is None
                      else torch.cat([state.h, state.attentional], dim=1))  # (B, n or 2n)
            gates = word_gates + layers.before(inputs)
        if memory.concept_gates is not None:  # Luong's decoder reads concepts in its gates
            gates = gates + per_row(memory.concept_gates, gates.shape[0])
        h, c = self.lstm_cell(gates, state.c)
        if layers is None:
            hidden_part, query = self.combine_hidden(h), None
        else:  # W_c's state part and the attention's query in one product
            parts = layers.after(h).split(layers.after_parts, dim=1)
            hidden_part, query = parts[0], (parts[1] if len(parts) > 1 else None)
        attended = self.attend(memory, h, query)
        if memory.out_rows is not None:  # W_c c_t = sum_i alpha_i (W_c v_i)
            context_part = mix_rows(attended.mix, memory.out_rows)
        else:
            context_part = self.combine_context(attended.context)
        attentional = torch.tanh(context_part + hidden_part)
        fed = attentional if self.feed_gates is not None else None
        return DecoderState(h, c, fed), attended, (attentional,)

    def readout(self, attentional: torch.Tensor, layers: StepLayers | None = None
                ) -> torch.Tensor:
        """p(y_t) from h~_t alone (W_s, or the decoding StepLayers' copy of it)."""
        return (self.out if layers is None else layers.out)(self.dropout(attentional))

    def readout_steps(self, embedded: torch.Tensor | None, attentional: torch.Tensor,
                      concept_out: torch.Tensor | None = None) -> torch.Tensor:
        """p(y_t) from h~_t alone (the word embedding is unused: Luong's readout)."""
        return self.readout(attentional)
