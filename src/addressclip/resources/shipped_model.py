"""The street-CLIP foundation model shipped inside the package (`resources/foundation/`).

It is a slim checkpoint (see `model.shipping`): the image tower and text head trained by
`addressclip pretrain` on the atlas of the training cities (never the evaluation cities), with the
text trunk taken from the installed all-MiniLM-L6-v2 package. `model.init=foundation` starts a run
from it; `foundation/MODEL_CARD.md` says how it was made, from what, and how to rebuild it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from addressclip.errors import AddressclipError

FOUNDATION_NAME = "foundation"  # the value of model.init / --init that means this file
FOUNDATION_FILE = "street-clip-foundation.pt"


def foundation_checkpoint() -> Path:
    """Path of the shipped foundation checkpoint inside the installed package."""
    path = Path(str(resources.files("addressclip.resources") / "foundation" / FOUNDATION_FILE))
    if not path.is_file():
        raise AddressclipError(
            f"the shipped foundation model {path} is missing from this install; reinstall addressclip or "
            "rebuild it with the command in resources/foundation/MODEL_CARD.md"
        )
    return path


def resolve_init(value: str | Path) -> Path:
    """`model.init` / `--init`: 'foundation' means the shipped model, anything else is a path."""
    return foundation_checkpoint() if str(value) == FOUNDATION_NAME else Path(value)
