"""The positive count that normalizes a focal loss, summed over data-parallel workers (PyTorch).

RetinaNet divides the summed focal loss by the number of anchors assigned to a ground-truth box,
num_pos (Lin et al. 2017, §4: "normalized by the number of anchors assigned to a ground-truth box";
https://arxiv.org/abs/1708.02002). Under data-parallel training each worker sees part of the batch. If it
divides by its own num_pos, the loss depends on how the batch was split: a worker with one positive weighs
its anchors ten times more than a worker with ten. The fix is to count positives over all workers:

    loss_w = sum_{i in worker w} FL_i / (N_pos / W)

where N_pos is the count summed over the W workers. ``DistributedDataParallel`` averages gradients over
workers, so (1/W) sum_w d loss_w = d (sum_i FL_i / N_pos): exactly the gradient of the whole batch on
one process. :func:`num_positives` gives N_pos; :class:`PositiveNormalizer` gives N_pos / W (floored at
``min_count``), optionally smoothed by Detectron2's exponential moving average (its RetinaNet starts the
average at 100 with momentum 0.9).

Without an initialized ``torch.distributed`` process group (or with ``group=False``) both are the local
count: a no-op, so the same training code runs on one process.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.distributed as dist

__all__ = ["num_positives", "PositiveNormalizer"]


def _world(group) -> tuple[bool, int]:
    """Whether to all-reduce, and the number of workers of ``group``."""
    if group is False or not (dist.is_available() and dist.is_initialized()):
        return False, 1
    return True, dist.get_world_size(group)


def num_positives(targets: torch.Tensor, *, ignore_index: float | None = None, group=None) -> torch.Tensor:
    """The sum of the targets that are not ignored, summed over the workers of ``group``.

    For hard labels (0/1, e.g. RetinaNet's one-hot anchor targets of shape (anchors, K)) this is the number
    of positives; for soft labels it is their total positive mass. Elements equal to ``ignore_index``
    (the anchors in RetinaNet's IoU band) are left out, as they are left out of the loss.

    Args:
        targets: tensor of targets in [0, 1], any shape; it is not differentiated (the count is detached).
        ignore_index: a target value that marks elements to leave out, or ``None``.
        group: the ``torch.distributed`` process group to sum over (``None``: the default group when one
            is initialized); ``False`` to count locally.

    Returns:
        A 0-d float64 tensor on the targets' device: the count over all workers.

    Raises:
        TypeError: ``targets`` is not a tensor, or ``ignore_index`` is not a number.

    Example:
        >>> import torch
        >>> from focal_ref.distributed import num_positives
        >>> float(num_positives(torch.tensor([[0.0, 1.0], [1.0, -1.0]]), ignore_index=-1))
        2.0
    """
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real)
    ):
        raise TypeError(f"ignore_index must be a number or None, got {type(ignore_index).__name__}")
    values = targets.detach().to(torch.float64)
    if ignore_index is not None:
        values = torch.where(targets.detach() == ignore_index, 0.0, values)
    count = values.sum()
    reduce, _ = _world(group)
    if reduce:
        # float64 counts are exact up to 2**53; the all-reduce sums them on every worker alike
        dist.all_reduce(count, op=dist.ReduceOp.SUM, group=group)
    return count


class PositiveNormalizer:
    """The divisor of a summed focal loss under data parallelism: N_pos / W, optionally as an EMA.

    Each call counts the positives of this step over all workers (:func:`num_positives`), divides by the
    number of workers W (``DistributedDataParallel`` then averages the gradients, which gives the gradient
    of sum FL / N_pos over the whole batch), floors it at ``min_count`` (a batch without positives would
    divide by 0) and, with ``momentum``, returns Detectron2's moving average
    ``value <- momentum * value + (1 - momentum) * count``, started at ``initial``.

    Args:
        momentum: ``None`` for this step's count, or a number in [0, 1) for the moving average.
        initial: the moving average's starting value (Detectron2's RetinaNet uses 100).
        min_count: the floor of this step's per-worker count.
        group: as in :func:`num_positives`.

    Raises:
        ValueError: ``momentum`` outside [0, 1), or ``initial``/``min_count`` not positive and finite.

    Example:
        >>> import torch
        >>> from focal_ref.distributed import PositiveNormalizer
        >>> normalizer = PositiveNormalizer(momentum=0.9, initial=100.0)
        >>> round(normalizer(torch.tensor([1.0, 0.0, 1.0])), 6)
        90.2
    """

    def __init__(
        self, momentum: float | None = None, initial: float = 100.0, min_count: float = 1.0, group=None
    ):
        if momentum is not None:
            if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
                raise TypeError(f"momentum must be a number or None, got {type(momentum).__name__}")
            if not 0.0 <= float(momentum) < 1.0:
                raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        for name, value in (("initial", initial), ("min_count", min_count)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive and finite, got {value!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.value = float(initial)
        self.min_count = float(min_count)
        self.group = group

    def __call__(self, targets: torch.Tensor, *, ignore_index: float | None = None) -> float:
        """This step's divisor, as a Python float (the same on every worker)."""
        _, world = _world(self.group)
        count = float(num_positives(targets, ignore_index=ignore_index, group=self.group)) / world
        count = max(count, self.min_count)
        if self.momentum is None:
            return count
        self.value = self.momentum * self.value + (1.0 - self.momentum) * count
        return self.value
