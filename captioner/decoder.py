"""The LSTM decoders, each built around one `step()`.

Greedy decoding, beam search and sampling (captioner.decoding) advance a decoder through
`prepare`, `init_state` and `step`; teacher forcing runs the same two halves of a step
(`advance`, then the readout) over whole captions, so there is exactly one definition of a
decoding step per decoder. `Decoder` holds what all decoders share (embedding, initial state,
the LSTM's word and state gates, teacher forcing over packed captions); `ShowAttendTellDecoder`
attends with h_{t-1} before the LSTM step (Bahdanau, Xu et al.), `captioner.luong.LuongDecoder`
with h_t after it. `captioner.build.build_decoder` picks the one the config's attention asks
for. Decoding (prepare(decoding=True) without gradients, in eval mode) steps through
`StepLayers` derived from the same layers (captioner.fused): fewer, larger products, int8 when
the config is quantized.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .attention import AttentionOutput, build_attention, mix_rows
from .concepts import ConceptReader
from .config import ModelConfig
from .fused import Derived, StepLayers, can_quantize, stacked_linear
from .vocab import Vocabulary

PAD_ID = Vocabulary.pad_id


class Memory(NamedTuple):
    """What the decoder attends over, prepared once per image. The decoder's rows may
    outnumber the images k to 1 (beam search): rows n*k .. n*k+k-1 all read image n."""

    features: torch.Tensor  # (B, L, D) annotation vectors
    projected: torch.Tensor  # (B, L, A) W_a a_i, so each step only adds W_h h
    # For decoding only: the context's linear maps applied to every a_i, (B, L, 4n) for the
    # LSTM gates and (B, L, m) for the deep output. A step then mixes these rows (a (B, L)
    # product) instead of multiplying z_t by 10 MB of weights, which at beam-search batch
    # sizes is bound by memory bandwidth. None in training, where captions outnumber images.
    gate_rows: torch.Tensor | None = None
    out_rows: torch.Tensor | None = None
    # How hard attention picks its region while decoding (captioner.options.HARD_MODES; None:
    # the model's own). A property of this decoding call, not of the shared model.
    hard_mode: str | None = None
    # The generator hard attention draws its regions from in "sample" mode (None: torch's
    # default): a call's own, seeded, so that concurrent callers never share draws.
    generator: torch.Generator | None = None
    # Attention scores are divided by it before the softmax (1 in training; when decoding, the
    # caller's or the model's ModelConfig.attention_temperature).
    temperature: float = 1.0
    # Decoders that read concepts (captioner.concepts): the photo's concept probabilities
    # (B, K), and their share of the LSTM's gates (B, 4n) and of the deep output (B, m), each
    # computed once per photo.
    concepts: torch.Tensor | None = None
    concept_gates: torch.Tensor | None = None
    concept_out: torch.Tensor | None = None
    # The decoder's StepLayers (captioner.fused) when its steps use them: decoding without
    # gradients. None: each step runs the layers themselves (training, self-critical sampling).
    layers: StepLayers | None = None

    def select(self, images: torch.Tensor) -> "Memory":
        return Memory(*(x.index_select(0, images) if isinstance(x, torch.Tensor) else x
                        for x in self))

    def head(self, rows: int) -> "Memory":
        return Memory(*(x[:rows] if isinstance(x, torch.Tensor) else x for x in self))


def per_row(values: torch.Tensor, rows: int) -> torch.Tensor:
    """A per-image tensor (I, ...) for `rows` decoder rows: beam search keeps one copy of an
    image's tensors for its k beams, rows n*k .. n*k+k-1 reading image n."""
    return values if values.shape[0] == rows else values.repeat_interleave(
        rows // values.shape[0], dim=0)


class DecoderState(NamedTuple):
    h: torch.Tensor  # (B, n)
    c: torch.Tensor  # (B, n)
    # Luong's attentional state h~_{t-1} (B, n) when input feeding is on; else None.
    attentional: torch.Tensor | None = None

    def select(self, rows: torch.Tensor) -> "DecoderState":
        return DecoderState(*(None if x is None else x.index_select(0, rows) for x in self))

    def head(self, rows: int) -> "DecoderState":
        return DecoderState(*(None if x is None else x[:rows] for x in self))


class StepOutput(NamedTuple):
    logits: torch.Tensor  # (B, V) unnormalised scores of the next word
    state: DecoderState
    attention: AttentionOutput


class TeacherForcedOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V) for predicting captions[:, 1:]
    alphas: torch.Tensor  # (B, T, L)
    log_probs: torch.Tensor | None  # (B, T) log p(s_t) of sampled locations (hard attention)


class Decoder(nn.Module):
    """What every decoder shares: the embedding E, the initial state from the mean
    annotation, the attention, the LSTM's word and state gates, dropout, and teacher forcing.
    A subclass defines `prepare`'s extras, `advance` (one step up to the readout), `step`,
    `readout_steps` (logits from what `advance` returned for every real word) and
    `build_step_layers` (its decoding layout of captioner.fused.StepLayers)."""

    # Decoding steps through StepLayers (captioner.fused). An instance may set it False to
    # step through the layers one by one: the reference the fused steps are tested and
    # benchmarked against (the same numbers up to float rounding).
    fuse_steps: bool = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 4:
            raise ValueError("config.vocab_size must be set from the vocabulary")
        self.config = config
        d, n, m = config.encoder_dim, config.hidden_dim, config.embed_dim
        self.embedding = nn.Embedding(config.vocab_size, m)  # E
        self.init_h = nn.Linear(d, n)  # f_init,h over the mean annotation
        self.init_c = nn.Linear(d, n)  # f_init,c
        self.attention = build_attention(config)
        # The LSTM's affine map, split by input: the word part is computed for all time steps
        # at once during teacher forcing.
        self.word_gates = nn.Linear(m, 4 * n)
        self.hidden_gates = nn.Linear(n, 4 * n, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        # What the photo holds, read once per photo and added to every step's LSTM input (the
        # attributes-as-input of Yao et al. 2017): starts at zero, so a decoder trained without
        # concepts writes the same captions until training teaches it to read them.
        self.concept_reader = None
        if config.concept_count:
            self.concept_reader = ConceptReader(d, len(config.concepts),
                                                len(config.imagenet_concepts))
            self.concept_gates = nn.Linear(config.concept_count, 4 * n, bias=False)
            nn.init.zeros_(self.concept_gates.weight)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():  # forget-gate bias 1: remember by default early in training
            self.word_gates.bias[n:2 * n].fill_(1.0)
        self.derived = Derived()  # the StepLayers, rebuilt after any change of the weights

    def prepare(self, features: torch.Tensor, decoding: bool = False,
                hard_mode: str | None = None, temperature: float | None = None,
                concepts: torch.Tensor | None = None) -> Memory:
        """Per-image work done once (decoding=True: also the decoding fast path's rows).
        temperature None: 1 while training, else the model's own. concepts (B, K): the
        photos' concept probabilities when the caller has them (training reads detectors
        that never saw the photo); None: the decoder's own concept reader's."""
        if temperature is None:
            temperature = 1.0 if self.training else self.config.attention_temperature
        fused = (decoding and self.fuse_steps and not self.training
                 and not torch.is_grad_enabled())
        memory = Memory(features, self.attention.project(features), hard_mode=hard_mode,
                        temperature=temperature,
                        layers=self.step_layers() if fused else None)
        if self.concept_reader is None:
            return memory
        if concepts is None:
            concepts = self.concept_reader(features).probs
        concepts = concepts.to(features.dtype)
        return memory._replace(concepts=concepts, concept_gates=self.concept_gates(concepts))

    def step_layers(self) -> StepLayers:
        """The decoding StepLayers, built at first use after any change of the weights."""
        return self.derived.get(self, "step", self.build_step_layers)

    def build_step_layers(self) -> StepLayers:
        raise NotImplementedError

    @property
    def quantized(self) -> bool:
        """Whether decoding steps run int8 products (ModelConfig.quantized, on a CPU)."""
        return self.config.quantized and can_quantize(self.embedding.weight)

    @property
    def query_layer(self) -> nn.Linear | None:
        """The attention's linear map of the state it scores with (its `query_layer`), or
        None: decoding computes it in one product with the step's other maps of that state."""
        return getattr(self.attention, "query_layer", None)

    def word_gate_table(self) -> torch.Tensor:
        """(V, 4n): the LSTM's word part W_x E_y + b of every word y, for lookups."""
        return self.word_gates(self.embedding.weight)

    def word_gates_of(self, tokens: torch.Tensor, embedded: torch.Tensor, memory: Memory
                      ) -> torch.Tensor:
        """W_x E_y + b (B, 4n) of the previous words tokens (B,), embedded (B, m)."""
        if memory.layers is None:
            return self.word_gates(embedded)
        return memory.layers.word_gates.index_select(0, tokens)

    def attend(self, memory: Memory, hidden: torch.Tensor,
               query: torch.Tensor | None = None) -> AttentionOutput:
        """The attention over the memory with state `hidden` (B*k, n); query: its
        query_layer(hidden), when the step has computed it."""
        extra = {} if query is None else {"query": query}
        if memory.generator is not None:
            extra["generator"] = memory.generator
        return self.attention(memory.features, memory.projected, hidden, memory.hard_mode,
                              memory.temperature, **extra)

    def init_state(self, memory: Memory) -> DecoderState:
        mean = memory.features.mean(dim=1)  # (B, D)
        return DecoderState(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        raise NotImplementedError

    def advance(self, word_gates: torch.Tensor, state: DecoderState, memory: Memory
                ) -> tuple[DecoderState, AttentionOutput, tuple[torch.Tensor, ...]]:
        """One step up to the readout; returns the new state, the attention and what the
        readout needs from this step (stacked over all steps for `readout_steps`)."""
        raise NotImplementedError

    def readout_steps(self, embedded: torch.Tensor, *parts: torch.Tensor,
                      concept_out: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every real word (N, V); concept_out (N, m): the concepts' share of the
        readout for each word, or None."""
        raise NotImplementedError

    @staticmethod
    def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = gates.chunk(4, dim=1)  # (B, n) each
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, features: torch.Tensor, captions: torch.Tensor,
                image_of: torch.Tensor | None = None,
                hard_mode: str | None = None,
                temperature: float | None = None,
                concepts: torch.Tensor | None = None) -> TeacherForcedOutput:
        """Teacher forcing over captions (B, T+1) that start with <start>; predicts captions[:, 1:].

        features (I, L, D) holds each image once and image_of (B,) names each caption's row
        (default: caption b reads row b), so the per-image work (the attention's projection
        over every location, the initial state) is done once for all of an image's captions.
        Each step runs only the captions that have not ended yet (longest first, a shrinking
        prefix), so padding costs nothing; padded positions of the output are 0.
        hard_mode: how hard attention picks its region in eval mode (as in Memory; None: the
        model's own); training mode always samples. temperature, concepts (I, K): as in
        prepare.
        """
        memory = self.prepare(features, hard_mode=hard_mode, temperature=temperature,
                              concepts=concepts)
        state = self.init_state(memory)  # (I, n)
        batch, steps = captions.shape[0], captions.shape[1] - 1
        lengths = (captions[:, 1:] != PAD_ID).sum(1)  # words + <end> per caption
        order = lengths.argsort(descending=True, stable=True)
        rows_of = order if image_of is None else image_of[order]  # each sorted caption's image
        captions, memory, state = captions[order], memory.select(rows_of), state.select(rows_of)
        concept_out = memory.concept_out  # (B, m) per sorted caption, or None
        active = [int((lengths > t).sum()) for t in range(steps)]  # captions still running at t
        embedded = self.embedding(captions[:, :-1])  # (B, T, m)
        word_gates = self.word_gates(embedded)  # (B, T, 4n): one product for all steps
        parts, alphas, log_probs = [], [], []
        for t, rows in enumerate(active):
            if rows < state.h.shape[0]:  # some captions ended: (the slices' backward is not free)
                state, memory = state.head(rows), memory.head(rows)
            state, attended, step_parts = self.advance(word_gates[:rows, t], state, memory)
            parts.append(step_parts)
            alphas.append(attended.weights)
            if attended.log_prob is not None:
                log_probs.append(attended.log_prob)
        # Every real word, time-major (N, ...): the readout runs once over exactly these.
        real = (torch.arange(steps, device=captions.device).unsqueeze(1)
                < lengths[order].unsqueeze(0))  # (T, B), True where step t of caption b is real
        if concept_out is not None:  # each real word's row: its caption's photo's
            concept_out = concept_out.unsqueeze(0).expand(steps, -1, -1)[real]
        words = self.readout_steps(embedded.transpose(0, 1)[real],
                                   *(torch.cat(part) for part in zip(*parts)),
                                   concept_out=concept_out)
        inverse = order.argsort()  # back to the callers' caption order

        def unpack(values: torch.Tensor) -> torch.Tensor:
            padded = values.new_zeros(steps, batch, *values.shape[1:])
            padded[real] = values
            return padded.transpose(0, 1).index_select(0, inverse)  # (B, T, ...)

        return TeacherForcedOutput(unpack(words), unpack(torch.cat(alphas)),
                                   unpack(torch.cat(log_probs)) if log_probs else None)


class ShowAttendTellDecoder(Decoder):
    """Show, Attend and Tell's decoder: attend with h_{t-1}, gate the context (f_beta), feed
    it to the LSTM with the previous word, and predict the word with the deep output layer
    p(y_t) ~ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t)).

    Its StepLayers: `before` maps h_{t-1} to [W_hh h (4n) | the attention's query (A) |
    f_beta's logit (1 or D)] (the parts its attention and gate have), `after` is L_h, `out`
    is L_o."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        d, n, m, v = config.encoder_dim, config.hidden_dim, config.embed_dim, config.vocab_size
        gate_width = {"scalar": 1, "channel": d, "none": 0}[config.gate]
        self.gate = nn.Linear(n, gate_width) if gate_width else None  # f_beta
        # The context part of the LSTM's affine map, once per image location when decoding
        # (Memory.gate_rows).
        self.context_gates = nn.Linear(d, 4 * n, bias=False)
        self.out_hidden = nn.Linear(n, m)  # L_h
        self.out_context = nn.Linear(d, m)  # L_z
        self.out = nn.Linear(m, v)  # L_o
        if config.concept_count:  # L_c: the concepts' share of the deep output
            self.concept_readout = nn.Linear(config.concept_count, m, bias=False)
            nn.init.zeros_(self.concept_readout.weight)

    def prepare(self, features: torch.Tensor, decoding: bool = False,
                hard_mode: str | None = None, temperature: float | None = None,
                concepts: torch.Tensor | None = None) -> Memory:
        """Per-image work done once; decoding=True also precomputes the context's linear
        maps for every location (exact for scalar and no gates, which commute with them)."""
        memory = super().prepare(features, decoding, hard_mode=hard_mode,
                                 temperature=temperature, concepts=concepts)
        if memory.concepts is not None:
            memory = memory._replace(concept_out=self.concept_readout(memory.concepts))
        if decoding and self.config.gate != "channel":
            memory = memory._replace(gate_rows=self.context_gates(features),
                                     out_rows=F.linear(features, self.out_context.weight))
        return memory

    def build_step_layers(self) -> StepLayers:
        before = [self.hidden_gates, self.query_layer, self.gate]
        before = [layer for layer in before if layer is not None]
        quantized = self.quantized
        return StepLayers(self.word_gate_table(), stacked_linear(before, quantized),
                          tuple(layer.out_features for layer in before),
                          stacked_linear([self.out_hidden], quantized), (self.config.embed_dim,),
                          stacked_linear([self.out], quantized))

    def step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory) -> StepOutput:
        """Read word y_{t-1} (B,), attend with h_{t-1}, update the LSTM, score word y_t."""
        embedded = self.embedding(tokens)  # (B, m)
        state, attended, context, beta = self._advance(
            self.word_gates_of(tokens, embedded, memory), state, memory)
        if memory.out_rows is not None:  # L_z (beta z_t) + b as a mix of precomputed rows
            context_out = mix_rows(attended.mix, memory.out_rows)
            if beta is not None:
                context_out = beta * context_out
            context_out = context_out + self.out_context.bias
        else:
            context_out = self.out_context(context)
        concept_out = (None if memory.concept_out is None
                       else per_row(memory.concept_out, embedded.shape[0]))
        return StepOutput(self.readout(embedded, state.h, context_out, concept_out,
                                       memory.layers), state, attended)

    def _gate(self, h: torch.Tensor) -> torch.Tensor | None:
        """beta_t = sigmoid(f_beta(h_{t-1})), (B, 1) or (B, D); None without a gate."""
        return torch.sigmoid(self.gate(h)) if self.gate is not None else None

    def _read_state(self, h: torch.Tensor, layers: StepLayers | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """What h_{t-1} (B, n) gives the step: W_hh h (B, 4n), the attention's query (None:
        the attention maps h itself) and beta_t (None without a gate)."""
        if layers is None:
            return self.hidden_gates(h), None, self._gate(h)
        parts = list(layers.before(h).split(layers.before_parts, dim=1))
        hidden_gates = parts.pop(0)
        query = parts.pop(0) if self.query_layer is not None else None
        beta = torch.sigmoid(parts.pop(0)) if self.gate is not None else None
        return hidden_gates, query, beta

    def advance(self, word_gates: torch.Tensor, state: DecoderState, memory: Memory
                ) -> tuple[DecoderState, AttentionOutput, tuple[torch.Tensor, torch.Tensor]]:
        """Attend with h_{t-1}, gate the context, run the LSTM cell. word_gates: (B, 4n).
        Returns the new state, the attention and (h_t, the gated context beta_t * z_t)."""
        state, attended, context, _ = self._advance(word_gates, state, memory)
        return state, attended, (state.h, context)

    def _advance(self, word_gates: torch.Tensor, state: DecoderState, memory: Memory
                 ) -> tuple[DecoderState, AttentionOutput, torch.Tensor, torch.Tensor | None]:
        """advance(), returning the new state, the attention, beta_t * z_t and beta_t."""
        hidden_gates, query, beta = self._read_state(state.h, memory.layers)
        attended = self.attend(memory, state.h, query)
        context = attended.context if beta is None else beta * attended.context  # (B, D)
        if memory.gate_rows is not None:  # W_c (beta z_t) = beta * sum_i mix_i (W_c a_i)
            context_gates = mix_rows(attended.mix, memory.gate_rows)
            if beta is not None:
                context_gates = beta * context_gates
        else:
            context_gates = self.context_gates(context)
        gates = word_gates + context_gates + hidden_gates
        if memory.concept_gates is not None:
            gates = gates + per_row(memory.concept_gates, gates.shape[0])
        h, c = self.lstm_cell(gates, state.c)
        return DecoderState(h, c), attended, context, beta

    def readout(self, embedded: torch.Tensor, h: torch.Tensor, context_out: torch.Tensor,
                concept_out: torch.Tensor | None = None, layers: StepLayers | None = None
                ) -> torch.Tensor:
        """Deep output layer over (..., m), (..., n), L_z z (..., m) and the concepts' L_c c
        (..., m) -> logits (..., V); layers: the decoding StepLayers' L_h and L_o."""
        out_hidden, out = (self.out_hidden, self.out) if layers is None else (layers.after,
                                                                             layers.out)
        # tanh on the sum follows the authors' code (arctic-captions).
        deep = embedded + out_hidden(self.dropout(h)) + context_out
        if concept_out is not None:
            deep = deep + concept_out
        return out(self.dropout(torch.tanh(deep)))

    def readout_steps(self, embedded: torch.Tensor, h: torch.Tensor, context: torch.Tensor,
                      concept_out: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(embedded, h, self.out_context(context), concept_out)
