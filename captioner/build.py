"""Models built from a config or a checkpoint: the decoder a config's attention asks for, and
a checkpoint's encoder and decoder with their weights loaded. Used by inference, and by
training stages that build a model or start from a checkpoint. Every checkpoint failure is a
CheckpointError naming the file."""
from __future__ import annotations

from .attention import attention_entry
from .checkpoint import Checkpoint, CheckpointError, torch_message
from .concepts import HEAD_KEYS
from .config import ModelConfig
from .decoder import Decoder, ShowAttendTellDecoder
from .encoder import Encoder, build_encoder
from .luong import LuongDecoder

# The decoder for each attention query (captioner.attention.QUERIES): attend with h_{t-1}
# before the LSTM step, or with h_t after it.
DECODERS: dict[str, type[Decoder]] = {"previous": ShowAttendTellDecoder, "current": LuongDecoder}


def build_decoder(config: ModelConfig) -> Decoder:
    """The decoder the config's attention is scored with: h_{t-1} or h_t."""
    return DECODERS[attention_entry(config.attention).query](config)


def build_checkpoint_encoder(checkpoint: Checkpoint, name: str = "<checkpoint>",
                             encoder_weights: str | None = None) -> Encoder:
    """The checkpoint's encoder: pretrained, its full weights, or its fine-tuned tensors over
    the pretrained ones (encoder_base "pretrained"); every failure is a CheckpointError."""
    try:
        return build_encoder(checkpoint.config.encoder, encoder_weights, checkpoint.encoder,
                             over_pretrained=checkpoint.encoder_base == "pretrained")
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: encoder weights do not fit "
                              f"{checkpoint.config.encoder} ({torch_message(str(exc))})") from None
    except ValueError as exc:  # unknown encoder, or one that needs a weights file
        raise CheckpointError(f"{name}: cannot build its encoder: {exc}") from None


def load_decoder(checkpoint: Checkpoint, name: str = "<checkpoint>",
                 encoder: Encoder | None = None) -> Decoder:
    """The checkpoint's decoder. A concept reader's ImageNet head, left out of shipped files,
    comes from `encoder` (built from the checkpoint when not given)."""
    decoder = build_decoder(checkpoint.config)
    state = checkpoint.decoder
    if checkpoint.config.imagenet_concepts and not all(k in state for k in HEAD_KEYS):
        head = (encoder or build_checkpoint_encoder(checkpoint, name)).imagenet_head_weights()
        if head is None:
            raise CheckpointError(f"{name}: reads ImageNet concepts, but its encoder "
                                  f"{checkpoint.config.encoder} has no ImageNet head")
        state = {**state, **dict(zip(HEAD_KEYS, head))}
    try:
        decoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: decoder weights do not match the config "
                              f"({torch_message(str(exc))})") from None
    return decoder
