"""The AddressCLIP model: open_clip towers, freezing options, text caches, one-call checkpoint loading."""

from addressclip.model.addressclip import AddressClipModel, build_model
from addressclip.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

__all__ = ["AddressClipModel", "build_model", "load_checkpoint", "read_checkpoint", "save_checkpoint"]
