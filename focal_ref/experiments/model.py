"""The model: a tiny one-stage detector, one logit per output cell, several model copies at once (torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .metrics import prior_bias

__all__ = ["TinyDetector"]


def _bias(layer: nn.Conv2d) -> torch.Tensor:
    if layer.bias is None:  # pragma: no cover - every layer here is built with a bias
        raise ValueError("the layer has no bias")
    return layer.bias


class TinyDetector(nn.Module):
    """A tiny one-stage detector: one logit per cell of a stride-2 grid, for ``num_models`` copies at once.

    One copy is ``conv3x3(1->w) ReLU maxpool2 conv3x3(w->w) ReLU conv3x3(w->2w) ReLU conv1x1(2w->1)``
    with ``w = width`` ("same" padding), so a 32x32 image gives a 16x16 logit map. ``num_models = G``
    copies are stacked along the channels and kept apart with grouped convolutions (the first layer
    needs no grouping: every copy reads the same image), so the forward pass returns ``(N, G, 16, 16)``
    and copy ``g`` depends only on its own parameters.

    Initialization (one copy's weights, replicated to all copies): He-normal weights and zero bias for
    the hidden layers; the classification layer has Gaussian weights with sigma 0.01 (Lin et al. 2017,
    §4.1) and bias :func:`prior_bias` of each copy's ``priors[g]``. With sigma 0.01 every initial logit is
    close to its bias, so the first predictions are close to the prior.

    Args:
        priors: the prior pi of each copy's last bias (None: bias 0); their number is G.
        width: channels of the first layers.
        seed: seeds the initial weights.

    Raises:
        ValueError: for no priors, or a prior outside (0, 1).

    Example:
        >>> import torch
        >>> TinyDetector([0.01, 0.5], width=4)(torch.zeros(3, 1, 32, 32)).shape
        torch.Size([3, 2, 16, 16])
    """

    def __init__(self, priors: Sequence[float | None] = (0.01,), *, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = len(priors)
        if g < 1:
            raise ValueError("priors must name at least one model copy")
        self.num_models, self.width = g, width
        self.conv1 = nn.Conv2d(1, width * g, 3, padding=1)
        self.conv2 = nn.Conv2d(width * g, width * g, 3, padding=1, groups=g)
        self.conv3 = nn.Conv2d(width * g, 2 * width * g, 3, padding=1, groups=g)
        self.head = nn.Conv2d(2 * width * g, g, 1, groups=g)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (self.conv1, self.conv2, self.conv3):
                out_per, in_per, kh, kw = layer.weight.shape
                std = math.sqrt(2.0 / (in_per * kh * kw))
                one = torch.randn((out_per // g, in_per, kh, kw), generator=gen) * std
                layer.weight.copy_(one.repeat(g, 1, 1, 1))
                _bias(layer).zero_()
            one = torch.randn((1, 2 * width, 1, 1), generator=gen) * 0.01
            self.head.weight.copy_(one.repeat(g, 1, 1, 1))
            _bias(self.head).copy_(torch.tensor([prior_bias(p) for p in priors]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(images)), 2)
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.head(x)

    def copy_weights(self, g: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copy ``g``'s (weight, bias) per layer: float32 NumPy, PyTorch layout ``(out, in, kh, kw)``."""
        if not 0 <= g < self.num_models:
            raise ValueError(f"g must lie in [0, {self.num_models}), got {g}")
        out = []
        for layer in (self.conv1, self.conv2, self.conv3, self.head):
            n = layer.weight.shape[0] // self.num_models
            w = layer.weight.detach()[g * n : (g + 1) * n].numpy().copy()
            b = _bias(layer).detach()[g * n : (g + 1) * n].numpy().copy()
            out.append((w, b))
        return out
