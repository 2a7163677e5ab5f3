"""A leaner forward pass through open_clip's ViT image tower: same weights, same function, less work.

open_clip's `VisionTransformer.forward` runs every block on every token and then keeps only the
class token. Two things are wasted on a small ViT, and both are removed here without changing what
the tower computes (the features agree with open_clip's to float32 rounding; tests check it):

- the last block needs keys and values of every token but queries, output projection and MLP for
  the class token only (about a fifth of the tower's matrix products at 4 layers);
- `nn.MultiheadAttention`'s general path reshapes and copies its inputs; here one `F.linear` makes
  q, k, v and attention is either `scaled_dot_product_attention` (flash/memory-efficient kernels on a
  GPU) or the explicit softmax(q kᵀ) v, which is faster on a CPU for sequences of a few dozen tokens.

The tower can also be split: `vision_stem` (patch embedding and the first N blocks) and
`vision_head` (the rest). With the stem frozen (`model.frozen_image_layers`) and no augmentation, the
stem's output for a training image never changes, so the model caches it per sample.

Only plain open_clip ViTs qualify (class-token pooling, no attentional pooler, no patch dropout,
`nn.MultiheadAttention` blocks); `lean_supported` says so, and the model falls back to open_clip's own
forward for anything else.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

Attention = Literal["sdpa", "math"]


def lean_supported(visual: nn.Module) -> bool:
    """True for a plain open_clip ViT this module can run (otherwise use `visual(images)`)."""
    transformer = getattr(visual, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    if blocks is None or not hasattr(visual, "_embeds") or not hasattr(visual, "ln_post"):
        return False
    if getattr(visual, "pool_type", None) != "tok" or getattr(visual, "attn_pool", None) is not None:
        return False
    if getattr(visual, "output_tokens", False) or getattr(visual, "final_ln_after_pool", False):
        return False
    if not isinstance(getattr(visual, "patch_dropout", nn.Identity()), nn.Identity):
        return False
    if not getattr(transformer, "batch_first", True):
        return False
    for block in blocks:
        attention = getattr(block, "attn", None)
        if not isinstance(attention, nn.MultiheadAttention) or not attention._qkv_same_embed_dim:
            return False
        if attention.in_proj_bias is None or attention.dropout or hasattr(block, "ln_1_kv"):
            return False
        if not isinstance(block.ls_1, nn.Identity) or not isinstance(block.ls_2, nn.Identity):
            return False
    return True


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention: Attention) -> torch.Tensor:
    if attention == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    return scores.softmax(dim=-1) @ v


def _block(block: nn.Module, x: torch.Tensor, attention: Attention, class_only: bool) -> torch.Tensor:
    """One `ResidualAttentionBlock`; with `class_only`, only the class token's output is computed."""
    attn: nn.MultiheadAttention = block.attn
    batch, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if class_only:
        q, x = q[:, :, :1], x[:, :1]
    mixed = _attend(q, k, v, attention).transpose(1, 2).reshape(batch, q.shape[2], width)
    x = x + F.linear(mixed, attn.out_proj.weight, attn.out_proj.bias)
    return x + block.mlp(block.ln_2(x))


def vision_stem(visual: nn.Module, images: torch.Tensor, blocks: int, attention: Attention) -> torch.Tensor:
    """Tokens after the patch embedding and the first `blocks` transformer blocks: (B, L, width)."""
    x = visual._embeds(images)
    for block in visual.transformer.resblocks[:blocks]:
        x = _block(block, x, attention, class_only=False)
    return x


def vision_head(
    visual: nn.Module, tokens: torch.Tensor, start: int, attention: Attention, checkpointed: bool = False
) -> torch.Tensor:
    """The image features (before L2 normalisation) from the tokens entering block `start`.

    `checkpointed`: activation checkpointing per block (recomputed in the backward pass; less memory
    for a large batch on a GPU, about a third more compute)."""
    blocks = visual.transformer.resblocks
    x = tokens
    for index in range(start, len(blocks)):
        class_only = index == len(blocks) - 1
        if checkpointed and torch.is_grad_enabled():
            x = checkpoint(_block, blocks[index], x, attention, class_only, use_reentrant=False)
        else:
            x = _block(blocks[index], x, attention, class_only)
    pooled = visual.ln_post(x[:, 0])
    return pooled @ visual.proj if visual.proj is not None else pooled


def lean_forward(visual: nn.Module, images: torch.Tensor, attention: Attention) -> torch.Tensor:
    """What `visual(images)` returns, computed the lean way."""
    return vision_head(visual, vision_stem(visual, images, 0, attention), 0, attention)
