"""focal_ref: the verified focal loss (Lin et al., 2017, https://arxiv.org/abs/1708.02002).

``import focal_ref`` gives the float64 NumPy reference, the ground truth: the losses, their first and
second derivatives, and the accurate building blocks :func:`sigmoid_parts` and :func:`log_softmax_parts`.
``focal_ref.torch`` and ``focal_ref.keras`` hold the framework versions tested against it,
``focal_ref.testing`` checks any implementation against it, and ``focal_ref.blog`` rebuilds the blog
post's code as published.
"""

from ._hessian import (
    sigmoid_focal_loss_hess,
    sigmoid_focal_loss_star_hess,
    softmax_focal_loss_hessian,
    softmax_focal_loss_hvp,
)
from ._parts import log_softmax_parts, sigmoid_parts
from ._prob_grad import binary_focal_loss_grad, categorical_focal_loss_grad
from ._reference import (
    binary_focal_loss,
    categorical_focal_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_grad,
    sigmoid_focal_loss_star,
    sigmoid_focal_loss_star_grad,
    softmax_focal_loss,
    softmax_focal_loss_grad,
)

__version__ = "0.1.0"

__all__ = [
    "binary_focal_loss",
    "binary_focal_loss_grad",
    "categorical_focal_loss",
    "categorical_focal_loss_grad",
    "log_softmax_parts",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_hess",
    "sigmoid_focal_loss_star",
    "sigmoid_focal_loss_star_grad",
    "sigmoid_focal_loss_star_hess",
    "sigmoid_parts",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
    "softmax_focal_loss_hessian",
    "softmax_focal_loss_hvp",
]
