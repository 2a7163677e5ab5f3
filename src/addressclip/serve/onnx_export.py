"""Writing the image tower as ONNX (`addressclip export --onnx`); needs torch and the `onnx` extra.

The exported graph is the whole image side of prediction: uint8 pixels (B, 3, S, S) -> float ->
(x - mean) / std -> the vision transformer -> L2-normalised (B, D) embedding, with a dynamic batch
axis. Folding the normalisation in means a runtime needs only the square uint8 view of a photo
(`data.pixels`), which numpy + PIL give. It uses torch's TorchScript-based exporter (`dynamo=False`):
the dynamo exporter needs onnxscript, one more dependency for the same graph here.

After writing, the file is checked with `onnx.checker` and, when onnxruntime is installed, run on
two random images against the torch model: an export that does not reproduce torch is an error,
not a bundle that answers differently.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from addressclip.errors import AddressclipError
from addressclip.model.addressclip import AddressClipModel
from addressclip.serve.onnx_backend import INPUT_NAME, ONNX_FILE, OUTPUT_NAME

OPSET = 17
EXPORT_TOLERANCE = 1e-4  # max |torch - onnxruntime| over the embedding entries on the check images


class ImageTower(nn.Module):
    """uint8 pixels -> L2-normalised image embedding (the model's normalisation folded in)."""

    def __init__(self, model: AddressClipModel) -> None:
        super().__init__()
        self.model = model
        pre = model.preprocess
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = (pixels.float() - self.mean) / self.std
        return self.model.encode_image(images, normalize=True).float()


def _require_onnx():
    try:
        import onnx
    except ModuleNotFoundError:
        raise AddressclipError("--onnx needs the onnx package: pip install 'addressclip[onnx]'") from None
    return onnx


def export_image_encoder(model: AddressClipModel, folder: Path, check: bool = True) -> dict[str, Any]:
    """Write `folder/image_encoder.onnx`; returns its bundle.json entry (without the checksum)."""
    onnx = _require_onnx()
    path = folder / ONNX_FILE
    size = int(model.preprocess["image_size"])
    device = next(model.parameters()).device
    tower = ImageTower(model).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=generator)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's fused inference kernel has no ONNX form: trace the plain ops instead
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's tracer and deprecation notes are not for users
            torch.onnx.export(
                tower,
                (example.to(device),),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    with torch.inference_mode():  # what the torch predictor computes (fused kernel and all)
        expected = tower(example.to(device)).float().cpu().numpy()
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as error:
        raise AddressclipError(f"{path}: the exported ONNX graph fails onnx.checker ({error})") from None
    difference = _check_against_torch(path, example.numpy(), expected) if check else None
    return {
        "file": ONNX_FILE,
        "input": INPUT_NAME,
        "input_dtype": "uint8",
        "input_shape": ["batch", 3, size, size],
        "output": OUTPUT_NAME,
        "embed_dim": int(expected.shape[1]),
        "normalized": True,
        "opset": OPSET,
        "logit_scale": float(model.logit_scale().detach().float().cpu()),
        "torch_version": torch.__version__.split("+")[0],
        "onnx_version": onnx.__version__,
        "export_max_abs_difference": difference,
    }


def _check_against_torch(path: Path, pixels: np.ndarray, expected: np.ndarray) -> float | None:
    """Max |torch - onnxruntime| on the example batch; None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [got] = session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
    difference = float(np.abs(got - expected).max())
    if not difference <= EXPORT_TOLERANCE:
        raise AddressclipError(
            f"{path}: onnxruntime differs from torch by {difference:.2e} (> {EXPORT_TOLERANCE:g}) on the "
            "check images; export without --onnx, or report this with your torch and onnx versions"
        )
    return difference
