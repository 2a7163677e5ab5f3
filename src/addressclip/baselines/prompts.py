"""Prompt-learning hooks into a frozen AddressCLIP text (and image) tower, without editing the model.

CoOp, CoCoOp and MaPLe learn vectors that replace words of the prompt. The model encodes plain
strings, so the prompt is written with placeholder words — "x x x x Main St & Cross St, District" —
and PyTorch hooks swap in learned vectors:

- the token-embedding layer's output at the placeholder positions (1 .. n_ctx: right after the
  start token, both in open_clip's BPE text tower and in the MiniLM/BERT tower of the `cpu` preset)
  is replaced by the context vectors (CoOp), shifted per image (CoCoOp);
- for MaPLe, a pre-hook on text layer i (1 <= i < depth) replaces the hidden states at the same
  positions with that layer's prompts; on the image side a pre-hook on ViT block 0 appends visual
  prompt tokens, blocks 1 .. depth-1 replace them, and a hook after the last block drops them again
  so the pooled (class-token) output keeps its usual shape.

The model's own `text_trunk` / `text_head` / `encode_image` then run unchanged, so the same code
works with open_clip's text transformer and the HF MiniLM wrapper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from addressclip.errors import AddressclipError
from addressclip.model.addressclip import AddressClipModel

PLACEHOLDER = "x"
INIT_PHRASE = "a street view of"


def token_embedding(model: AddressClipModel) -> nn.Embedding:
    if model.hf_text:
        return model.clip.text.transformer.get_input_embeddings()
    return model.clip.token_embedding


def text_layers(model: AddressClipModel) -> nn.ModuleList:
    if model.hf_text:
        return model.clip.text.transformer.encoder.layer
    return model.clip.transformer.resblocks


def _text_batch_first(model: AddressClipModel) -> bool:
    return True if model.hf_text else bool(getattr(model.clip.transformer, "batch_first", True))


def vision_blocks(model: AddressClipModel) -> nn.ModuleList:
    visual = model.clip.visual
    transformer = getattr(visual, "transformer", None)
    if transformer is None or not hasattr(transformer, "resblocks"):
        raise AddressclipError("MaPLe needs a ViT image tower (open_clip VisionTransformer)")
    return transformer.resblocks


def freeze(model: AddressClipModel) -> AddressClipModel:
    """Every weight of the backbone frozen, eval mode (prompt learners train only their own vectors)."""
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def _replace_tokens(
    hidden: torch.Tensor, start: int, values: torch.Tensor, batch_first: bool
) -> torch.Tensor:
    """hidden with positions [start, start + n) set to `values` ((n, W) or (B, n, W))."""
    x = hidden if batch_first else hidden.transpose(0, 1)
    values = values.to(x.dtype)
    if values.dim() == 2:
        values = values.unsqueeze(0).expand(x.shape[0], -1, -1)
    x = torch.cat([x[:, :start], values, x[:, start + values.shape[1] :]], dim=1)
    return x if batch_first else x.transpose(0, 1)


@contextlib.contextmanager
def _hooks(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _pre_hook(transform):
    """A forward pre-hook that rewrites the first (hidden-state) argument of a layer call."""

    def hook(module, args, kwargs):
        if args:
            return (transform(args[0]), *args[1:]), kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = transform(kwargs["hidden_states"])
        return args, kwargs

    return hook


class PromptedText(nn.Module):
    """Text features of every candidate address under learned context vectors (frozen tower)."""

    def __init__(self, model: AddressClipModel, addresses: Sequence[str], n_ctx: int = 4) -> None:
        super().__init__()
        self.model = model
        self.n_ctx = n_ctx
        prompts = [" ".join([PLACEHOLDER] * n_ctx) + " " + a for a in addresses]
        tokens = model.tokenize(prompts)
        placeholder = model.tokenize([PLACEHOLDER])[0, 1]
        if not bool((tokens[:, 1 : 1 + n_ctx] == placeholder).all()):
            raise AddressclipError(
                "prompt learning: the text tower's tokenizer does not keep the placeholder words at "
                "positions 1..n_ctx"
            )
        if model.hf_text:  # attention-masked: trailing padding columns can go (exact, and cheaper)
            used = int((tokens != 0).any(dim=0).nonzero().max()) + 1
            tokens = tokens[:, :used]
        self.register_buffer("tokens", tokens, persistent=False)
        self.width = token_embedding(model).embedding_dim
        self.batch_first = _text_batch_first(model)

    def initial_context(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """CoOp's start: the embedding of 'a street view of' when it has n_ctx words, else N(0, 0.02)."""
        phrase = self.model.tokenize([INIT_PHRASE])[0]
        words = phrase[1 : 1 + self.n_ctx]
        embedding = token_embedding(self.model)
        if int((phrase != 0).sum()) == self.n_ctx + 2:  # start + n_ctx words + end, nothing else
            with torch.no_grad():
                return embedding(words.to(embedding.weight.device)).detach().float().clone()
        return torch.randn(self.n_ctx, self.width, generator=generator) * 0.02

    def forward(
        self,
        context: torch.Tensor,
        classes: torch.Tensor | None = None,
        deep: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        """L2-normalised text features.

        context (n_ctx, W) -> (C, D); per-image context (B, n_ctx, W) -> (B, C, D). `deep[i]` (n_ctx,
        W) replaces the prompt positions at the input of text layer i + 1 (MaPLe).
        """
        tokens = self.tokens if classes is None else self.tokens[classes]
        per_image = context.dim() == 3
        images = context.shape[0] if per_image else 1
        if per_image:
            tokens = tokens.repeat(images, 1)
            context = context.repeat_interleave(len(tokens) // images, dim=0)
        layers = text_layers(self.model)
        if len(deep) >= len(layers):
            raise AddressclipError(
                f"MaPLe depth {len(deep) + 1} exceeds the text tower's {len(layers)} layers"
            )
        handles = [
            token_embedding(self.model).register_forward_hook(
                lambda module, args, output: _replace_tokens(output, 1, context, True)
            )
        ]
        for i, prompt in enumerate(deep):
            transform = (lambda p: lambda h: _replace_tokens(h, 1, p, self.batch_first))(prompt)
            handles.append(layers[i + 1].register_forward_pre_hook(_pre_hook(transform), with_kwargs=True))
        with _hooks(handles):
            pooled = self.model.text_trunk(tokens.to(context.device))
            features = F.normalize(self.model.text_head(pooled).float(), dim=-1)
        if per_image:
            return features.view(images, -1, features.shape[-1])
        return features


@contextlib.contextmanager
def visual_prompts(model: AddressClipModel, prompts: Sequence[torch.Tensor]) -> Iterator[None]:
    """Within the block, `model.encode_image` runs with MaPLe's deep visual prompts.

    prompts[i] (n, W_vision) enters at ViT block i: appended at block 0, replaced after that, and
    removed after the last block.
    """
    if not prompts:
        yield
        return
    blocks = vision_blocks(model)
    if len(prompts) > len(blocks):
        raise AddressclipError(f"MaPLe depth {len(prompts)} exceeds the image tower's {len(blocks)} blocks")
    batch_first = bool(getattr(model.clip.visual.transformer, "batch_first", True))
    count = prompts[0].shape[0]

    def append(hidden: torch.Tensor) -> torch.Tensor:
        x = hidden if batch_first else hidden.transpose(0, 1)
        extra = prompts[0].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        x = torch.cat([x, extra], dim=1)
        return x if batch_first else x.transpose(0, 1)

    def replace(prompt: torch.Tensor):
        def transform(hidden: torch.Tensor) -> torch.Tensor:
            length = hidden.shape[1] if batch_first else hidden.shape[0]
            return _replace_tokens(hidden, length - count, prompt, batch_first)

        return transform

    def strip(module, args, output):
        x = output if batch_first else output.transpose(0, 1)
        x = x[:, :-count]
        return x if batch_first else x.transpose(0, 1)

    handles = [blocks[0].register_forward_pre_hook(_pre_hook(append), with_kwargs=True)]
    for i in range(1, len(prompts)):
        handles.append(blocks[i].register_forward_pre_hook(_pre_hook(replace(prompts[i])), with_kwargs=True))
    handles.append(blocks[len(blocks) - 1].register_forward_hook(strip))
    with _hooks(handles):
        yield
