"""The AddressCLIP model: open_clip towers, freezing options, text caches, one-call checkpoint loading."""

from addressclip.model.addressclip import AddressClipModel
from addressclip.model.checkpoint import read_checkpoint, save_checkpoint
from addressclip.model.factory import MODEL_FILE, build_model, load_checkpoint

__all__ = [
    "MODEL_FILE",
    "AddressClipModel",
    "build_model",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
