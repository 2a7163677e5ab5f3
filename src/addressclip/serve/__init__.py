"""Using a trained model: the Python predictor, bundles, the REST service and its web page.

`AddressPredictor` is imported lazily so that `import addressclip.serve` stays light (no torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AddressMatch", "AddressPredictor", "Prediction"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from addressclip.serve import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'addressclip.serve' has no attribute {name!r}")
