"""The blog's multi-class PyTorch ``CELoss`` and ``FocalLoss`` (its implementation, rebuilt), as published.

Inputs are **logits** ``pred`` (the softmax is inside) and integer class labels. Faults reproduced on purpose:

* softmax, then ``clamp(min=0.0001, max=1.0)``, then log: the post's "NaN fix". The loss of a sample is
  capped at -log(1e-4) = 9.2103 (focal: times (1 - 1e-4)^gamma) and its gradient is exactly 0 once the
  target probability is below 1e-4, which silences the hardest examples;
* ``pred.view(-1, class_num)`` assumes the classes are the last, contiguous axis. On (N, C, H, W) logits
  each "row" is C consecutive pixels of one channel: channels and pixels are mixed (and a target of
  shape (N, H, W) does not even fit the (N, C) one-hot built from ``target.size(0)``);
* every product is cast to float64 (``.double()``), so the loss is float64 whatever the input dtype;
* ``use_alpha=True`` needs ``alpha`` (a per-class sequence or one number): ``alpha=None`` fails in
  ``torch.tensor(None)``. ``use_alpha=False`` ignores ``alpha`` altogether;
* ``.cuda()`` is hard-coded (``device=None``, the default); ``device="cpu"`` replaces it with ``.to(device)``.

``alpha`` is per class (alpha_c multiplies the terms of class c). ``size_average=True`` gives the mean over
the rows of ``pred.view(-1, class_num)``, ``False`` the sum.
"""

import torch
import torch.nn as nn

from ._device import placed

__all__ = ["CELoss", "FocalLoss"]


class CELoss(nn.Module):
    """The blog's multi-class cross entropy (rebuilt): softmax, clamp to [1e-4, 1], log, float64.

    Example:
        >>> loss = CELoss(3, device="cpu")
        >>> round(loss(torch.zeros(1, 3), torch.tensor([0])).item(), 4)  # log 3
        1.0986
    """

    def __init__(self, class_num, alpha=None, use_alpha=False, size_average=True, device=None):
        super().__init__()
        self.class_num = class_num
        self.alpha = alpha
        self.device = device
        if use_alpha:
            self.alpha = placed(torch.tensor(alpha), device)

        self.softmax = nn.Softmax(dim=1)
        self.use_alpha = use_alpha
        self.size_average = size_average

    def forward(self, pred, target):
        prob = self.softmax(pred.view(-1, self.class_num))
        prob = prob.clamp(min=0.0001, max=1.0)

        target_ = placed(torch.zeros(target.size(0), self.class_num), self.device)
        target_.scatter_(1, target.view(-1, 1).long(), 1.0)

        if self.use_alpha:
            batch_loss = -self.alpha.double() * prob.log().double() * target_.double()
        else:
            batch_loss = -prob.log().double() * target_.double()

        batch_loss = batch_loss.sum(dim=1)

        if self.size_average:
            loss = batch_loss.mean()
        else:
            loss = batch_loss.sum()
        return loss


class FocalLoss(nn.Module):
    """The blog's multi-class focal loss (rebuilt): softmax, clamp to [1e-4, 1], (1 - p)^gamma, float64.

    Example:
        >>> loss = FocalLoss(3, gamma=0, device="cpu")
        >>> round(loss(torch.tensor([[-20.0, 0.0, 0.0]]), torch.tensor([0])).item(), 4)  # capped: not 20.69
        9.2103
    """

    def __init__(self, class_num, alpha=None, gamma=2, use_alpha=False, size_average=True, device=None):
        super().__init__()
        self.class_num = class_num
        self.alpha = alpha
        self.gamma = gamma
        self.device = device
        if use_alpha:
            self.alpha = placed(torch.tensor(alpha), device)

        self.softmax = nn.Softmax(dim=1)
        self.use_alpha = use_alpha
        self.size_average = size_average

    def forward(self, pred, target):
        prob = self.softmax(pred.view(-1, self.class_num))
        prob = prob.clamp(min=0.0001, max=1.0)

        target_ = placed(torch.zeros(target.size(0), self.class_num), self.device)
        target_.scatter_(1, target.view(-1, 1).long(), 1.0)

        if self.use_alpha:
            batch_loss = (
                -self.alpha.double()
                * torch.pow(1 - prob, self.gamma).double()
                * prob.log().double()
                * target_.double()
            )
        else:
            batch_loss = -torch.pow(1 - prob, self.gamma).double() * prob.log().double() * target_.double()

        batch_loss = batch_loss.sum(dim=1)

        if self.size_average:
            loss = batch_loss.mean()
        else:
            loss = batch_loss.sum()
        return loss
