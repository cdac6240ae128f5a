"""The blog's Keras focal loss (the blog's implementation, rebuilt), as published and as intended.

The post's closure uses the Keras 2 backend module ``K``; this rebuild uses the Keras 3 equivalents
(``keras.ops.ones_like``, ``keras.ops.power``, ``keras.ops.log`` and ``keras.backend.epsilon()``, which is
1e-7 unless changed), line for line. Inputs are **probabilities** ``y_pred`` and 0/1 labels ``y_true``; the
result is elementwise (Keras reduces it afterwards).

Faults reproduced on purpose (the book shows each one next to the ``focal_ref`` call that does it right):

* ``focal_loss``: the inner function computes the loss and never returns it, so it returns ``None``;
* p_t = y p + (1-y)(1-p) + eps is above 1 when p_t is 1 (p = 1 on a positive, p = 0 on a negative):
  1 - p_t < 0, so a non-integer ``gamma`` (0.5) gives NaN, and log(p_t) > 0 gives a (tiny) negative loss;
* the eps inside the log caps the loss of the hardest examples at about -log(eps) = 16.1;
* the default ``alpha`` is 0.75 here but 0.25 in the post's PyTorch version.

``alpha`` weights the positive class (alpha_t = alpha*y + (1-alpha)*(1-y)), as in the paper.
"""

from keras import backend as K
from keras import ops

__all__ = ["focal_loss", "focal_loss_returning"]


def focal_loss(alpha=0.75, gamma=2.0):
    """The blog's Keras closure (rebuilt) exactly as published: the inner function returns ``None``.

    ``model.compile(loss=focal_loss())`` is accepted, and training then fails because the loss is None.

    Args:
        alpha: weight of class 1 (the post's default 0.75).
        gamma: focusing parameter.

    Returns:
        ``focal_loss_fixed(y_true, y_pred)``, which returns None.

    Example:
        >>> import keras
        >>> print(focal_loss()(keras.ops.ones(1), keras.ops.ones(1) * 0.9))
        None
    """

    def focal_loss_fixed(y_true, y_pred):
        ones = ops.ones_like(y_true)
        alpha_t = y_true * alpha + (ones - y_true) * (1 - alpha)
        p_t = y_true * y_pred + (ones - y_true) * (ones - y_pred) + K.epsilon()
        focal_loss = -alpha_t * ops.power((ones - p_t), gamma) * ops.log(p_t)  # noqa: F841 (never returned)

    return focal_loss_fixed


def focal_loss_returning(alpha=0.75, gamma=2.0):
    """The blog's Keras closure (rebuilt) with the missing ``return`` added; every other fault kept.

    Elementwise -alpha_t * (1 - p_t)^gamma * log(p_t) with p_t = y p + (1-y)(1-p) + eps (eps = 1e-7):
    NaN for non-integer ``gamma`` where p_t + eps > 1, and a loss capped near -log(eps) = 16.1.

    Args:
        alpha: weight of class 1 (the post's default 0.75).
        gamma: focusing parameter.

    Returns:
        ``focal_loss_fixed(y_true, y_pred)`` on probabilities, returning the elementwise loss.

    Example:
        >>> import keras
        >>> loss = focal_loss_returning(alpha=0.5, gamma=0.0)
        >>> round(float(keras.ops.convert_to_numpy(loss(keras.ops.ones(1), keras.ops.ones(1) * 0.5))[0]), 4)
        0.3466
    """

    def focal_loss_fixed(y_true, y_pred):
        ones = ops.ones_like(y_true)
        alpha_t = y_true * alpha + (ones - y_true) * (1 - alpha)
        p_t = y_true * y_pred + (ones - y_true) * (ones - y_pred) + K.epsilon()
        focal_loss = -alpha_t * ops.power((ones - p_t), gamma) * ops.log(p_t)
        return focal_loss

    return focal_loss_fixed
