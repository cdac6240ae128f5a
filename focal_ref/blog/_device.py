"""Where the rebuilt PyTorch blog modules put their tensors: ``.cuda()`` as published, or a chosen device."""

from __future__ import annotations

from typing import Any

__all__ = ["placed"]


def placed(tensor: Any, device: Any) -> Any:
    """``tensor.cuda()`` as published when ``device`` is None; ``tensor.to(device)`` otherwise.

    Args:
        tensor: a torch tensor.
        device: None (the blog's hard-coded ``.cuda()``) or a torch device or its name.

    Returns:
        The tensor on that device.

    Example:
        >>> import torch
        >>> placed(torch.zeros(2), "cpu").device.type
        'cpu'
    """
    return tensor.cuda() if device is None else tensor.to(device)
