"""Model cost: parameter count and multiply-accumulates per image."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    """Number of parameters, trainable or not."""
    return sum(p.numel() for p in module.parameters())


def _first_sample(value: Any) -> Any:
    """Cut every tensor in a (nested) input down to its first sample."""
    if isinstance(value, torch.Tensor):
        return value[:1] if value.dim() > 0 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_first_sample(v) for v in value)
    if isinstance(value, dict):
        return {k: _first_sample(v) for k, v in value.items()}
    return value


def count_macs(module: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """Multiply-accumulates of one forward pass on the first sample, counted by FlopCounterMode."""
    was_training = module.training
    # Eval mode lets BatchNorm1d accept a batch of 1; the training flag is restored afterwards.
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(*_first_sample(inputs), **_first_sample(kwargs))
    finally:
        module.train(was_training)
    # FlopCounterMode counts only matmuls and convolutions, at 2 FLOPs per multiply-accumulate.
    return counter.get_total_flops() // 2
