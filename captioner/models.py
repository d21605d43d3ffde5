"""A checkpoint's model, built and loaded: used by inference, and by training stages that
start from a checkpoint. Every failure is a CheckpointError naming the file."""
from __future__ import annotations

from .checkpoint import Checkpoint, CheckpointError
from .decoder import Decoder, build_decoder
from .encoder import Encoder, build_encoder


def build_checkpoint_encoder(checkpoint: Checkpoint, name: str = "<checkpoint>",
                             encoder_weights: str | None = None) -> Encoder:
    """The checkpoint's encoder: pretrained, its full weights, or its fine-tuned tensors over
    the pretrained ones (encoder_base "pretrained"); every failure is a CheckpointError."""
    try:
        return build_encoder(checkpoint.config.encoder, encoder_weights, checkpoint.encoder,
                             over_pretrained=checkpoint.encoder_base == "pretrained")
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: encoder weights do not fit "
                              f"{checkpoint.config.encoder} ({str(exc)[:200]})") from None
    except ValueError as exc:  # unknown encoder, or one that needs a weights file
        raise CheckpointError(f"{name}: cannot build its encoder: {exc}") from None


def load_decoder(checkpoint: Checkpoint, name: str = "<checkpoint>") -> Decoder:
    decoder = build_decoder(checkpoint.config)
    try:
        decoder.load_state_dict(checkpoint.decoder, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: decoder weights do not match the config "
                              f"({str(exc).splitlines()[0][:200]})") from None
    return decoder
