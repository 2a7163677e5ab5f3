"""AddressCLIP = an open_clip model whose text side reads address strings, plus freezing and caches.

The wrapper adds what the training engine and the predictor need around open_clip: tokenisation of
plain strings (memoised: a city has a few hundred address strings), the paper's freezing ablation
(image / text / both towers learn), and a cache of text features when the text tower is frozen — then
only its small projection head runs per step, which is what makes a pretrained MiniLM text tower
affordable on a CPU. The image side likewise: `model.frozen_image_layers` freezes the patch embedding
and the first blocks, and `configure_runtime` picks how the tower runs (open_clip's forward or the
lean one of `model.vision`, optionally compiled, with activation checkpointing); with a frozen stem
the training images' stem tokens are cached per sample when the trainer passes sample keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from addressclip.config import ModelConfig
from addressclip.errors import ConfigError
from addressclip.model.vision import Attention, lean_supported, vision_head, vision_stem

LOG = logging.getLogger(__name__)
TEXT_CHUNK = 256
# Stem tokens of a frozen image stem are cached per training sample up to this many bytes (the demo
# world's 8.6 k training images at the cpu preset take 0.29 GB).
STEM_CACHE_BYTES = 2 * 2**30


def _text_pool(hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's pooling: the features at the end-of-text token (the largest id in each row)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), tokens.argmax(dim=-1)]


class AddressClipModel(nn.Module):
    """Image and text encoders with a learnable logit scale (CLIP's), returning L2-normalised features."""

    def __init__(
        self,
        clip: nn.Module,
        tokenizer: Any,
        config: ModelConfig,
        open_clip_config: Mapping[str, Any],
        preprocess: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.model_config = config
        self.open_clip_config = dict(open_clip_config)
        self.preprocess = dict(preprocess)
        self._token_cache: dict[str, torch.Tensor] = {}
        self._trunk_cache: dict[str, torch.Tensor] = {}
        self._stem_cache: dict[Hashable, torch.Tensor] = {}
        self._stem_cache_bytes = 0
        self.vision_path: Literal["open_clip", "lean"] = "open_clip"
        self.attention: Attention = "sdpa"
        self.grad_checkpointing = False
        self._compiled: _CompiledOrEager | None = None
        self.apply_freezing()

    # ---------------------------------------------------------------------------------------- towers
    @property
    def hf_text(self) -> bool:
        return hasattr(self.clip, "text")

    @property
    def text_frozen(self) -> bool:
        return self.model_config.trainable == "image"

    @property
    def image_frozen(self) -> bool:
        return self.model_config.trainable == "text"

    def text_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.clip.named_parameters() if not self._is_image(n) and "logit" not in n]

    def image_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.clip.named_parameters() if self._is_image(n)]

    @staticmethod
    def _is_image(name: str) -> bool:
        return name.startswith("visual.")

    def _is_text_head(self, name: str) -> bool:
        return name.startswith("text.proj") if self.hf_text else name == "text_projection"

    @property
    def frozen_image_blocks(self) -> int:
        """Transformer blocks of the image tower kept frozen (with the patch embedding before them)."""
        blocks = getattr(getattr(self.clip.visual, "transformer", None), "resblocks", None)
        wanted = int(getattr(self.model_config, "frozen_image_layers", 0) or 0)
        return min(wanted, len(blocks)) if blocks is not None else 0

    def _in_frozen_stem(self, name: str) -> bool:
        frozen = self.frozen_image_blocks
        if not frozen or not self._is_image(name):
            return False
        local = name[len("visual.") :]
        if local.startswith(("conv1.", "class_embedding", "positional_embedding", "ln_pre.")):
            return True
        prefix = "transformer.resblocks."
        return local.startswith(prefix) and int(local[len(prefix) :].split(".")[0]) < frozen

    def apply_freezing(self) -> None:
        """requires_grad per the `trainable` option; the logit scale always learns."""
        if getattr(self.model_config, "frozen_image_layers", 0) and not lean_supported(self.clip.visual):
            raise ConfigError("model.frozen_image_layers needs a plain open_clip ViT image tower (arch)")
        for name, param in self.clip.named_parameters():
            if self._is_image(name):
                param.requires_grad_(not self.image_frozen and not self._in_frozen_stem(name))
            elif "logit" in name:
                param.requires_grad_(True)
            elif self.text_frozen:
                param.requires_grad_(self.model_config.train_text_head and self._is_text_head(name))
            else:
                param.requires_grad_(True)

    def train(self, mode: bool = True) -> AddressClipModel:
        """Frozen towers stay in eval mode (no dropout), so cached features stay valid."""
        super().train(mode)
        if self.image_frozen:
            self.clip.visual.eval()
        if self.text_frozen and self.hf_text:
            self.clip.text.transformer.eval()
        return self

    # ------------------------------------------------------------------------------------------ text
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._token_cache]
        if missing:
            for text, row in zip(missing, self.tokenizer(list(missing)), strict=True):
                self._token_cache[text] = row
        return torch.stack([self._token_cache[t] for t in texts])

    def text_trunk(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled text features before the projection head.

        Trailing padding is cut to the longest text of the batch first: the MiniLM tower masks
        padding and CLIP's causal tower pools at the end-of-text token, so the features are the same
        while short texts (addresses) cost a fraction of the context length.
        """
        clip = self.clip
        if self.hf_text:
            text = clip.text
            mask = (tokens != text.config.pad_token_id).long()
            length = max(1, int(mask.sum(dim=1).max()))
            tokens, mask = tokens[:, :length], mask[:, :length]
            out = text.transformer(input_ids=tokens, attention_mask=mask)
            return text.pooler(out, mask)
        length = int(tokens.argmax(dim=-1).max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
        attn_mask = None if clip.attn_mask is None else clip.attn_mask[:length, :length]
        x = clip.transformer(x, attn_mask=attn_mask)
        return _text_pool(clip.ln_final(x), tokens)

    def text_head(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.hf_text:
            return self.clip.text.proj(pooled)
        projection = self.clip.text_projection
        return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection

    def cache_text_trunk(self, texts: Sequence[str], progress: bool = False) -> int:
        """Run the frozen text trunk once over every new string; returns how many were new.

        Strings are grouped by token length so that each chunk carries little padding.
        """
        missing = [t for t in dict.fromkeys(texts) if t not in self._trunk_cache]
        if not missing:
            return 0
        device = self.logit_scale_param.device
        tokens = self.tokenize(missing)
        pad = self.clip.text.config.pad_token_id if self.hf_text else 0
        order = torch.argsort((tokens != pad).sum(dim=1), stable=True).tolist()
        was_training = self.training
        self.eval()
        bar = tqdm(total=len(missing), desc="text features", unit="text", disable=not progress, leave=False)
        with torch.no_grad():
            for start in range(0, len(order), TEXT_CHUNK):
                rows = order[start : start + TEXT_CHUNK]
                pooled = self.text_trunk(tokens[rows].to(device)).float()
                for row, features in zip(rows, pooled, strict=True):
                    self._trunk_cache[missing[row]] = features
                bar.update(len(rows))
        bar.close()
        self.train(was_training)
        return len(missing)

    def _cached_trunk(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        self.cache_text_trunk(texts)
        return torch.stack([self._trunk_cache[t] for t in texts]).to(device)

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        device = self.logit_scale_param.device
        if self.text_frozen:
            pooled = self._cached_trunk(texts, device)
            if self.model_config.train_text_head:
                features = self.text_head(pooled.to(self._text_dtype()))
            else:
                with torch.no_grad():
                    features = self.text_head(pooled.to(self._text_dtype()))
        else:
            features = self.text_head(self.text_trunk(self.tokenize(texts).to(device)))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text_batched(self, texts: Sequence[str], batch_size: int = TEXT_CHUNK) -> torch.Tensor:
        """Features of many strings (e.g. every candidate address) without gradients."""
        chunks = [self.encode_text(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.embed_dim)

    def _text_dtype(self) -> torch.dtype:
        return next(p for _, p in self.text_parameters()).dtype

    def clear_text_cache(self) -> None:
        self._trunk_cache.clear()

    # ----------------------------------------------------------------------------------------- image
    def configure_runtime(
        self,
        vision_path: Literal["open_clip", "lean"] = "open_clip",
        attention: Literal["auto", "sdpa", "math"] = "auto",
        compile_backend: str | None = None,
        grad_checkpointing: bool = False,
    ) -> None:
        """How the towers run (not what they compute): see `train.vision_forward` and its neighbours.

        'lean' falls back to open_clip's forward for a tower `model.vision` cannot run; 'auto'
        attention is SDPA on a GPU and the explicit softmax on a CPU (measured faster there for a
        few dozen tokens). `compile_backend` (e.g. 'inductor') compiles the trainable image path for
        training; a compiler that fails falls back to eager with one warning.
        """
        lean = vision_path == "lean" and lean_supported(self.clip.visual)
        self.vision_path = "lean" if lean else "open_clip"
        device = self.logit_scale_param.device
        self.attention = ("sdpa" if device.type == "cuda" else "math") if attention == "auto" else attention
        self.grad_checkpointing = grad_checkpointing
        if grad_checkpointing and hasattr(self.clip, "set_grad_checkpointing"):
            self.clip.set_grad_checkpointing(True)  # open_clip's towers (the HF one ignores False)
        self._compiled = _CompiledOrEager(self._image_path, compile_backend) if compile_backend else None

    def _image_path(self, inputs: torch.Tensor, start: int) -> torch.Tensor:
        """Features from pixels (start 0, open_clip or lean) or from stem tokens entering block `start`."""
        if self.vision_path == "open_clip":
            return self.clip.visual(inputs)
        if start == 0:
            inputs = vision_stem(self.clip.visual, inputs, 0, self.attention)
        return vision_head(self.clip.visual, inputs, start, self.attention, self.grad_checkpointing)

    def _stem_tokens(self, images: torch.Tensor, keys: Sequence[Hashable] | None) -> torch.Tensor:
        """The frozen stem's output; per-sample cached when `keys` name the (unaugmented) images."""
        frozen = self.frozen_image_blocks
        cache = self._stem_cache
        if keys is None:
            with torch.no_grad():
                return vision_stem(self.clip.visual, images, frozen, self.attention)
        keys = [k.item() if isinstance(k, torch.Tensor) else k for k in keys]
        missing = [row for row, key in enumerate(keys) if key not in cache]
        if not missing:
            return torch.stack([cache[key] for key in keys])
        with torch.no_grad():
            fresh = vision_stem(self.clip.visual, images[missing], frozen, self.attention)
        found = {keys[row]: tokens for row, tokens in zip(missing, fresh, strict=True)}
        rows = [found[key] if key in found else cache[key] for key in keys]
        for key, tokens in found.items():
            size = tokens.numel() * tokens.element_size()
            if self._stem_cache_bytes + size <= STEM_CACHE_BYTES:
                cache[key] = tokens
                self._stem_cache_bytes += size
        return torch.stack(rows)

    def clear_image_cache(self) -> None:
        self._stem_cache.clear()
        self._stem_cache_bytes = 0

    def encode_image(
        self, images: torch.Tensor, normalize: bool = True, keys: Sequence[Hashable] | None = None
    ) -> torch.Tensor:
        """Image features. `keys` (one per image, e.g. dataset rows) allow caching the frozen stem's
        tokens: pass them only for images that are the same every time their key comes back."""
        frozen = self.frozen_image_blocks if self.vision_path == "lean" else 0
        inputs, start = (self._stem_tokens(images, keys), frozen) if frozen else (images, 0)
        run = self._compiled if self._compiled is not None and self.training else self._image_path
        features = run(inputs, start)
        return F.normalize(features, dim=-1) if normalize else features

    # ---------------------------------------------------------------------------------------- common
    @property
    def logit_scale_param(self) -> nn.Parameter:
        return self.clip.logit_scale

    def logit_scale(self) -> torch.Tensor:
        """exp(log scale), clamped at 100 as CLIP does."""
        return self.clip.logit_scale.exp().clamp(max=100.0)

    @property
    def embed_dim(self) -> int:
        return int(self.open_clip_config["embed_dim"])

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        self.clear_text_cache()
        self.clear_image_cache()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(
        self,
        images: torch.Tensor,
        addresses: Sequence[str] | None = None,
        captions: Sequence[str] | None = None,
        image_keys: Sequence[Hashable] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Normalised image, address-text and caption-text features, and the logit scale.

        One call (rather than separate encode_* calls) so that DDP sees a forward per step.
        """
        image = self.encode_image(images, keys=image_keys)
        address = self.encode_text(addresses) if addresses is not None else None
        caption = self.encode_text(captions) if captions is not None else None
        return image, address, caption, self.logit_scale()


class _CompiledOrEager:
    """`torch.compile(fn)`, falling back to `fn` itself (once, with a warning) when compiling fails:
    no compiler on the machine, an unsupported Python, a backend error."""

    def __init__(self, fn: Callable[..., torch.Tensor], backend: str) -> None:
        self.eager = fn
        self.backend = backend
        self.failed: str | None = None
        try:
            self.compiled: Callable[..., torch.Tensor] | None = torch.compile(fn, backend=backend)
        except Exception as error:
            self._give_up(error)

    def _give_up(self, error: BaseException) -> None:
        self.compiled = None
        root: BaseException = error  # the compiler's own error, under dynamo's wrappers
        for _ in range(8):
            inner = getattr(root, "inner_exception", None) or root.__cause__
            if not isinstance(inner, BaseException):
                break
            root = inner
        lines = str(root).strip().splitlines()
        self.failed = f"{type(root).__name__}: {lines[0] if lines else ''}"
        LOG.warning("torch.compile (backend %s) failed, training without it: %s", self.backend, self.failed)

    def __call__(self, *args: Any) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as error:
                self._give_up(error)
        return self.eager(*args)
