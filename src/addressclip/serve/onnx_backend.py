"""The ONNX backend: photos embedded by onnxruntime, ranked with numpy, no torch anywhere.

A bundle exported with `addressclip export --onnx` carries the image tower as `image_encoder.onnx`
(see `serve.onnx_export`): uint8 pixels (B, 3, S, S) in, L2-normalised embeddings (B, D) out, the
model's mean/std folded into the graph. Ranking a photo against a fixed gallery needs nothing else:
the address embeddings are already in the bundle's `gallery.npz`, and the softmax scale is in
`bundle.json`. So `load_predictor(bundle, backend="onnx")` (or any bundle with that file on a
machine without torch) predicts, serves and decodes sequences with numpy + onnxruntime only.

What still needs torch: embedding *new* address texts (`add_addresses`, `use_addressbook` with a
gallery whose embeddings are not cached in the bundle) runs the text tower, which is not exported;
`export` writes model.pt from the torch model. Both say so in a one-line error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from addressclip.errors import AddressclipError, InputError

ONNX_FILE = "image_encoder.onnx"
INPUT_NAME = "pixels"
OUTPUT_NAME = "embedding"
BACKENDS = ("auto", "torch", "onnx")
NEEDS_TEXT_TOWER = (
    "embedding new address texts needs the text tower, which the ONNX backend does not carry; "
    "load the bundle with backend='torch' (--backend torch, needs torch installed)"
)


@functools.cache
def torch_installed() -> bool:
    """Whether torch imports here (an import, not a spec lookup: a broken or refused torch is absent)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(requested: str, source: Path, meta: dict[str, Any] | None) -> str:
    """'torch' or 'onnx' for a bundle (`meta` = its bundle.json) or a checkpoint (`meta` None).

    'auto' is torch when torch is installed, else the bundle's ONNX image tower when it has one.
    """
    if requested not in BACKENDS:
        raise AddressclipError(f"backend must be one of {', '.join(BACKENDS)}, not '{requested}'")
    has_onnx = meta is not None and isinstance(meta.get("image_encoder"), dict)
    if requested == "onnx" and not has_onnx:
        what = "bundle has no " + ONNX_FILE if meta is not None else "is a checkpoint, not a bundle"
        raise AddressclipError(
            f"{source}: backend 'onnx' needs a bundle exported with `addressclip export --onnx`; this {what}"
        )
    if requested == "onnx":
        return "onnx"
    if torch_installed():
        return "torch"
    if requested == "torch":
        raise AddressclipError("backend 'torch' needs torch: pip install torch (or use --backend onnx)")
    if meta is None:
        raise AddressclipError(
            f"{source}: loading a checkpoint needs torch (pip install torch); without it, load a bundle "
            "exported with `addressclip export --onnx`"
        )
    if not has_onnx:
        raise AddressclipError(
            f"{source}: torch is not installed and the bundle has no {ONNX_FILE}; install torch "
            "or export the bundle with `addressclip export --onnx`"
        )
    return "onnx"


class OnnxImageEncoder:
    """The exported image tower in an onnxruntime session (CPU): `encoder(uint8 pixels) -> (B, D)`.

    `preprocess` and `logit_scale` come from bundle.json: the predictor needs the image size and the
    interpolation to decode photos, and the scale for its probabilities, without the torch model.
    """

    def __init__(
        self,
        path: str | Path,
        preprocess: dict[str, Any],
        logit_scale: float,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime
        except ModuleNotFoundError:
            raise AddressclipError(
                "the ONNX backend needs onnxruntime: pip install 'addressclip[onnx]'"
            ) from None
        self.path = Path(path)
        self.preprocess = dict(preprocess)
        self.logit_scale = float(logit_scale)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            raise InputError(self.path, None, f"not a loadable ONNX model ({error})") from None
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        given = inputs[0] if len(inputs) == 1 else None
        size = int(self.preprocess["image_size"])
        if given is None or given.name != INPUT_NAME or given.type != "tensor(uint8)":
            raise InputError(self.path, None, f"expected one uint8 input named '{INPUT_NAME}'")
        if list(given.shape[1:]) != [3, size, size]:
            raise InputError(
                self.path, None, f"input shape {given.shape} does not match image_size {size} of bundle.json"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in outputs:
            raise InputError(self.path, None, f"no output named '{OUTPUT_NAME}' (has {outputs})")

    @property
    def threads(self) -> int:
        return int(self.session.get_session_options().intra_op_num_threads)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(B, D) float32 L2-normalised embeddings of a uint8 (B, 3, S, S) batch."""
        batch = np.ascontiguousarray(pixels, dtype=np.uint8)
        [embedding] = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(embedding, dtype=np.float32)


def encoder_from_bundle(folder: Path, meta: dict[str, Any], threads: int | None = None) -> OnnxImageEncoder:
    """The bundle's ONNX image tower with the preprocessing and scale bundle.json records."""
    entry = meta["image_encoder"]
    field = "image_encoder"
    for key in ("file", "logit_scale"):
        if key not in entry:
            raise InputError(folder / "bundle.json", f"{field}.{key}", "missing; export the bundle again")
    if not isinstance(meta.get("preprocess"), dict) or "image_size" not in meta["preprocess"]:
        raise InputError(folder / "bundle.json", "preprocess", "missing image_size; export the bundle again")
    return OnnxImageEncoder(folder / entry["file"], meta["preprocess"], entry["logit_scale"], threads)


# ----------------------------------------------------------------------------------------- ranking
def cosine_scores(images: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(B, N) cosine similarities of normalised image and address embeddings (float32)."""
    return np.asarray(images, dtype=np.float32) @ np.asarray(gallery, dtype=np.float32).T


def top_k(cosine: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best rows per photo, best first (like torch.topk)."""
    count = cosine.shape[1]
    if k < count:
        part = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(count), cosine.shape).copy()
    order = np.argsort(-np.take_along_axis(cosine, part, axis=1), axis=1, kind="stable")
    indices = np.take_along_axis(part, order, axis=1)
    return indices, np.take_along_axis(cosine, indices, axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def log_softmax64(cosine: np.ndarray, scale: float) -> np.ndarray:
    """log softmax(cosine x scale) in float64, as the torch path computes it for sequences."""
    logits = cosine.astype(np.float64) * float(np.float32(scale))
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def rank_numpy(
    images: np.ndarray, gallery: np.ndarray, scale: float, k: int, with_log: bool = False
) -> tuple[np.ndarray, ...]:
    """`AddressPredictor.rank` (or `rank_all` with `with_log`) on numpy arrays."""
    cosine = cosine_scores(images, gallery)
    probabilities = softmax(cosine * np.float32(scale))
    indices, scores = top_k(cosine, k)
    chosen = np.take_along_axis(probabilities, indices, axis=1)
    if not with_log:
        return indices, scores, chosen
    return indices, scores, chosen, log_softmax64(cosine, scale)
