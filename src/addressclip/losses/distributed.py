"""Feature gathering across DDP ranks, so every rank computes the loss over the global batch.

`gather_with_local_grad` all-gathers features; its backward sums, over ranks, the gradients that
each rank's copy of the full loss sends to this rank's slice (an all-reduce, which every backend —
gloo included — supports). Every rank computes the same global loss, so after DDP's gradient
averaging the parameters receive exactly the single-process gradient of the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithLocalGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        size = dist.get_world_size()
        ctx.rank = dist.get_rank()
        ctx.rows = local.shape[0]
        parts = [torch.empty_like(local) for _ in range(size)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_local_grad(local: torch.Tensor) -> torch.Tensor:
    """Rows of all ranks in rank order (equal row counts per rank); gradients reach the local slice."""
    if world_size() == 1:
        return local
    return _GatherWithLocalGrad.apply(local)


def gather_no_grad(local: torch.Tensor) -> torch.Tensor:
    """Rows of all ranks in rank order, for labels and coordinates."""
    if world_size() == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)
