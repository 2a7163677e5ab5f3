"""Optional parts of the install (`pip install 'addressclip[world,train,serve,bench]'`).

A command that needs a package of an extra the user did not install stops with one line naming the
package and the extra, instead of an ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from addressclip.errors import AddressclipError

EXTRA_OF: dict[str, str] = {
    "osmium": "world",
    "matplotlib": "bench",
    "sklearn": "bench",
    "faiss": "train",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "webdataset": "shards",
    "transformers": "caption",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` (e.g. 'osmium'), or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = (error.name or module).split(".")[0]
        extra = EXTRA_OF.get(top, EXTRA_OF.get(module.split(".")[0], "all"))
        raise AddressclipError(
            f"{purpose} needs the '{top}' package, which is not installed: pip install 'addressclip[{extra}]'"
        ) from None
