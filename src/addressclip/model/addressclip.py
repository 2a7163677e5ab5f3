"""AddressCLIP = an open_clip model whose text side reads address strings, plus freezing and caches.

The wrapper adds what the training engine and the predictor need around open_clip: tokenisation of
plain strings (memoised: a city has a few hundred address strings), the paper's freezing ablation
(image / text / both towers learn), and a cache of text features when the text tower is frozen — then
only its small projection head runs per step, which is what makes a pretrained MiniLM text tower
affordable on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from addressclip.config import ModelConfig

TEXT_CHUNK = 256


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

    def apply_freezing(self) -> None:
        """requires_grad per the `trainable` option; the logit scale always learns."""
        for name, param in self.clip.named_parameters():
            if self._is_image(name):
                param.requires_grad_(not self.image_frozen)
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
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.clip.encode_image(images, normalize=normalize)

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
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(
        self,
        images: torch.Tensor,
        addresses: Sequence[str] | None = None,
        captions: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Normalised image, address-text and caption-text features, and the logit scale.

        One call (rather than separate encode_* calls) so that DDP sees a forward per step.
        """
        image = self.encode_image(images)
        address = self.encode_text(addresses) if addresses is not None else None
        caption = self.encode_text(captions) if captions is not None else None
        return image, address, caption, self.logit_scale()
