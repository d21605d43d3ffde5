"""Show, Attend and Tell image captioning: caption a photo and see where each word looked."""
__version__ = "0.7.0"  # the one version number (pyproject.toml reads it)

from .build import build_decoder
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import ModelConfig
from .decoder import Decoder
from .decoding import Decoded, Decoding
from .encoder import ENCODERS, Encoder, EncoderOutput, build_encoder
from .images import ImageError, load_image
from .options import DecodeOptions
from .search import Hypothesis, sample
from .inference import Caption, Captioner, Timing, default_checkpoint, resolve_checkpoint
from .preprocessing import Preprocessing
from .vocab import Vocabulary, tokenize

__all__ = [
    "Caption", "Captioner", "Checkpoint", "CheckpointError", "DecodeOptions", "Decoded",
    "Decoder", "Decoding", "ENCODERS", "Encoder", "EncoderOutput", "Hypothesis", "ImageError",
    "ModelConfig", "Preprocessing", "Timing", "Vocabulary", "build_decoder", "build_encoder",
    "default_checkpoint", "load_checkpoint", "load_image", "resolve_checkpoint", "sample",
    "save_checkpoint", "tokenize",
]
