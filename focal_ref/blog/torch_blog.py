"""The blog's PyTorch binary and multi-label focal losses (the blog's implementation, rebuilt), as published.

Inputs are **probabilities** (the post notes that a model without a final sigmoid must apply one first)
and 0/1 labels. Faults reproduced on purpose:

* ``.cuda()`` is hard-coded: with the default ``device=None`` the modules call ``.cuda()`` exactly where the
  post does, so they fail on a machine without CUDA. ``device="cpu"`` (or any device) replaces each
  ``.cuda()`` with ``.to(device)`` and changes nothing else;
* ``probs.clamp(min=0.0001, max=1.0)``: the loss of an example is capped at -log(1e-4) = 9.2103 (times
  alpha_t (1 - 1e-4)^gamma), and its gradient is exactly 0 once p_t < 1e-4, i.e. for the hardest examples;
* ``pred.view(-1, 1)`` raises on non-contiguous input;
* the default alpha is 0.25 here but 0.75 in the post's Keras version;
* ``FocalLoss_MultiLabel`` builds a new ``FocalLoss`` (and a CUDA tensor) on every call and runs one loss per
  label in a Python loop, where one elementwise call would do.

``alpha`` weights class 1 (alpha_t = alpha for y = 1, 1 - alpha for y = 0), as in the paper.
``size_average=True`` gives the mean over the batch, ``False`` the sum.
"""

import torch
import torch.nn as nn

from ._device import placed

__all__ = ["FocalLoss", "FocalLoss_MultiLabel"]


class FocalLoss(nn.Module):
    """The blog's binary ``FocalLoss`` (rebuilt): probabilities in, clamp(1e-4, 1), mean or sum out.

    Reproduces the published forward pass line for line: both class probabilities are stacked as
    ``cat((1 - pred, pred))``, the target's one is picked with a ``scatter_`` mask, clamped to [1e-4, 1],
    and weighted by alpha (class 1) or 1 - alpha (class 0). ``device=None`` keeps the hard-coded ``.cuda()``.

    Example:
        >>> loss = FocalLoss(alpha=0.5, gamma=0, size_average=False, device="cpu")
        >>> round(loss(torch.tensor([1e-9]), torch.tensor([1.0])).item(), 4)  # capped at 0.5 * -log(1e-4)
        4.6052
    """

    def __init__(self, alpha=0.25, gamma=2, size_average=True, device=None):
        super().__init__()
        self.device = device
        self.alpha = placed(torch.tensor(alpha), device)
        self.gamma = gamma
        self.size_average = size_average

    def forward(self, pred, target):
        pred = pred.view(-1, 1)
        target = target.view(-1, 1)
        pred = torch.cat((1 - pred, pred), dim=1)

        class_mask = placed(torch.zeros(pred.shape[0], pred.shape[1]), self.device)
        class_mask.scatter_(1, target.view(-1, 1).long(), 1.0)

        probs = (pred * class_mask).sum(dim=1).view(-1, 1)
        probs = probs.clamp(min=0.0001, max=1.0)
        log_p = probs.log()

        alpha = placed(torch.ones(pred.shape[0], pred.shape[1]), self.device)
        alpha[:, 0] = alpha[:, 0] * (1 - self.alpha)
        alpha[:, 1] = alpha[:, 1] * self.alpha
        alpha = (alpha * class_mask).sum(dim=1).view(-1, 1)

        batch_loss = -alpha * (torch.pow((1 - probs), self.gamma)) * log_p

        if self.size_average:
            loss = batch_loss.mean()
        else:
            loss = batch_loss.sum()
        return loss


class FocalLoss_MultiLabel(nn.Module):
    """The blog's multi-label focal loss (rebuilt): one binary ``FocalLoss`` per label, in a Python loop.

    ``pred`` and ``target`` are (N, L) probabilities and 0/1 labels. Each label's batch loss (mean or sum,
    by ``size_average``) goes into a (1, L) tensor placed with ``.cuda()`` (``device=None``), which is then
    averaged or summed over labels. With ``size_average=True`` this equals the mean of one elementwise
    call over all N*L entries, computed with L calls instead of one.

    Example:
        >>> loss = FocalLoss_MultiLabel(alpha=0.5, gamma=0, device="cpu")
        >>> round(loss(torch.full((2, 3), 0.5), torch.ones(2, 3)).item(), 4)  # 0.5 * log 2
        0.3466
    """

    def __init__(self, alpha=0.25, gamma=2, size_average=True, device=None):
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.size_average = size_average
        self.device = device

    def forward(self, pred, target):
        criterion = FocalLoss(self.alpha, self.gamma, self.size_average, device=self.device)
        loss = placed(torch.zeros(1, target.shape[1]), self.device)

        for label in range(target.shape[1]):
            batch_loss = criterion(pred[:, label], target[:, label])
            loss[0, label] = batch_loss.mean()

        if self.size_average:
            loss = loss.mean()
        else:
            loss = loss.sum()
        return loss
