"""Adapters: call a loss of another signature, input or alpha convention as the checker expects.

An adapter is ``adapter(fn, logits, targets, *, alpha, gamma) -> loss`` (elementwise for the sigmoid check,
per sample for the softmax check); pass it as ``adapter=`` with the loss as ``fn``. These are the adapters
the book uses for the blog post's code and for the peers (Keras's built-ins, kornia). Each imports its
framework when called, so importing this module needs neither torch nor Keras.

Example::

    from focal_ref.blog import keras_blog
    from focal_ref.testing import check_sigmoid_focal_loss, adapters
    report = check_sigmoid_focal_loss(keras_blog.focal_loss_returning, framework="keras",
                                      adapter=adapters.keras_closure(keras_blog.focal_loss_returning))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "keras_closure",
    "torch_per_example",
    "multilabel_per_example",
    "multiclass_per_row",
    "keras_binary_focal_crossentropy",
    "keras_categorical_focal_crossentropy",
    "kornia_binary",
    "kornia_softmax",
]

Adapter = Callable[..., Any]


def keras_closure(make_loss: Callable[..., Any]) -> Adapter:
    """Adapter for a Keras factory ``make_loss(alpha=, gamma=)`` of ``loss(y_true, y_pred)`` on probabilities.

    This is the blog post's Keras form (:func:`focal_ref.blog.keras_blog.focal_loss`): the adapter applies
    a sigmoid to the logits and calls the closure with ``(targets, probabilities)``.

    Args:
        make_loss: the factory.

    Returns:
        The adapter (``fn`` is ignored: the factory is called).

    Example:
        >>> callable(keras_closure(lambda alpha, gamma: None))
        True
    """

    def adapter(fn: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float) -> Any:
        import keras

        return make_loss(alpha=alpha, gamma=gamma)(targets, keras.ops.sigmoid(logits))

    return adapter


def torch_per_example(device: str | None = "cpu") -> Adapter:
    """Adapter for a torch loss class on probabilities, built as ``cls(alpha, gamma, size_average, device)``.

    The blog post's binary ``FocalLoss`` sums over its batch; the adapter calls it on one probability at a
    time, so the result is elementwise. ``device=None`` keeps the module's own default (the blog's
    hard-coded ``.cuda()``).

    Args:
        device: passed to the class.

    Returns:
        The adapter; ``fn`` is the class.

    Example:
        >>> callable(torch_per_example())
        True
    """

    def adapter(cls: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float) -> Any:
        import torch

        criterion = cls(alpha=alpha, gamma=gamma, size_average=False, device=device)
        p = torch.sigmoid(logits)
        return torch.stack([criterion(p[i : i + 1], targets[i : i + 1]) for i in range(p.shape[0])])

    return adapter


def multilabel_per_example(cls: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float) -> Any:
    """Adapter for the blog's ``FocalLoss_MultiLabel``: one ``(1, 1)`` batch of probabilities per example.

    Args:
        cls: the class (built with ``alpha, gamma, size_average=False, device="cpu"``).
        logits: ``(N,)`` logits.
        targets: ``(N,)`` targets.
        alpha: the case's alpha.
        gamma: the case's gamma.

    Returns:
        The ``(N,)`` elementwise loss.

    Example:
        >>> import torch
        >>> from focal_ref.blog.torch_blog import FocalLoss_MultiLabel
        >>> x, y = torch.zeros(2), torch.ones(2)
        >>> out = multilabel_per_example(FocalLoss_MultiLabel, x, y, alpha=0.5, gamma=0.0)
        >>> [round(v, 4) for v in out.tolist()]  # 0.5 * log 2 each
        [0.3466, 0.3466]
    """
    import torch

    criterion = cls(alpha=alpha, gamma=gamma, size_average=False, device="cpu")
    p = torch.sigmoid(logits)
    return torch.stack([criterion(p[i].view(1, 1), targets[i].view(1, 1)) for i in range(p.shape[0])])


def multiclass_per_row(cls: Any, gamma_free: bool = False, device: str = "cpu") -> Adapter:
    """Adapter for the blog's multi-class classes ``cls(num_classes, alpha=, use_alpha=, ...)`` on logits.

    The class is built per case (``alpha=None`` means ``use_alpha=False``) and called on one row at a time.

    Args:
        cls: the class (also passed as ``fn``).
        gamma_free: True for a class without a ``gamma`` argument (the blog's ``CELoss``).
        device: passed to the class.

    Returns:
        The adapter.

    Example:
        >>> callable(multiclass_per_row(object, gamma_free=True))
        True
    """

    def adapter(fn: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float) -> Any:
        import torch

        kwargs = {} if gamma_free else {"gamma": gamma}
        criterion = cls(
            logits.shape[1],
            alpha=alpha and list(alpha),
            use_alpha=alpha is not None,
            size_average=False,
            device=device,
            **kwargs,
        )
        return torch.stack([criterion(logits[i : i + 1], targets[i : i + 1]) for i in range(logits.shape[0])])

    return adapter


def keras_binary_focal_crossentropy(apply_class_balancing: bool) -> Adapter:
    """Adapter for ``keras.losses.BinaryFocalCrossentropy`` (the class as ``fn``), on logits.

    Keras takes ``(y_true, y_pred)`` and means over the last axis, so each element is given as a ``(1,)``
    row; its alpha applies only with ``apply_class_balancing=True``. For the argument regions, ``weight``
    maps to Keras's ``sample_weight`` (one per row, so per element) and ``reduction`` to Keras's: ``"none"``
    to None, ``"sum"`` to ``"sum"``, ``"mean"`` to ``"sum_over_batch_size"`` (the sum over the number of
    elements, the reference's unweighted mean). Keras has no ``pos_weight`` or ``ignore_index``: the adapter
    does not take them, and the checker skips those regions with that note.

    Args:
        apply_class_balancing: passed to the class.

    Returns:
        The adapter.

    Example:
        >>> callable(keras_binary_focal_crossentropy(True))
        True
    """
    reductions = {None: None, "none": None, "sum": "sum", "mean": "sum_over_batch_size"}

    def adapter(
        cls: Any,
        logits: Any,
        targets: Any,
        *,
        alpha: Any,
        gamma: float,
        reduction: str | None = None,
        weight: Any = None,
    ) -> Any:
        import keras

        loss = cls(
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=True,
            reduction=reductions[reduction],
        )
        shape = tuple(logits.shape)
        rows = (-1, 1)
        sample_weight = None
        if weight is not None:
            sample_weight = keras.ops.reshape(keras.ops.broadcast_to(weight, shape), (-1,))
        out = loss(
            keras.ops.reshape(targets, rows), keras.ops.reshape(logits, rows), sample_weight=sample_weight
        )
        return keras.ops.reshape(out, shape) if reductions[reduction] is None else out

    return adapter


def keras_categorical_focal_crossentropy(
    cls: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float
) -> Any:
    """Adapter for ``keras.losses.CategoricalFocalCrossentropy`` (the class as ``fn``), on logits.

    Index targets become one-hot; Keras's alpha multiplies every class's term (no ``1 - alpha``), so the
    checker's per-class weights pass through as a list.

    Args:
        cls: the class.
        logits: ``(N, C)`` logits.
        targets: ``(N,)`` indices or ``(N, C)`` probabilities.
        alpha: None or C weights.
        gamma: the case's gamma.

    Returns:
        The ``(N,)`` per-sample loss.

    Example:
        >>> import keras
        >>> cfc = keras.losses.CategoricalFocalCrossentropy
        >>> x, t = keras.ops.zeros((1, 2)), keras.ops.zeros(1, "int32")
        >>> out = keras_categorical_focal_crossentropy(cfc, x, t, alpha=None, gamma=0.0)
        >>> round(float(keras.ops.convert_to_numpy(out)[0]), 4)  # log 2
        0.6931
    """
    import keras

    weights = 1.0 if alpha is None else list(alpha)
    y_true = targets if len(targets.shape) == 2 else keras.ops.one_hot(targets, logits.shape[1])
    return cls(alpha=weights, gamma=gamma, from_logits=True, reduction=None)(y_true, logits)


def _per_class(value: Any, logits: Any, name: str) -> Any:
    """kornia's ``weight`` / ``pos_weight``: a ``(C,)`` tensor; a number becomes C copies of itself."""
    import torch

    from .frameworks import NotSupported

    c = logits.shape[1]
    if not isinstance(value, torch.Tensor):
        return torch.full((c,), float(value), dtype=logits.dtype)
    if tuple(value.shape) != (c,):
        raise NotSupported(f"kornia's {name} is per class: shape (C,) only, not {tuple(value.shape)}")
    return value


def kornia_binary(
    fn: Any,
    logits: Any,
    targets: Any,
    *,
    alpha: Any,
    gamma: float,
    reduction: str | None = None,
    weight: Any = None,
    pos_weight: Any = None,
    ignore_index: float | None = None,
) -> Any:
    """Adapter for ``kornia.losses.binary_focal_loss_with_logits``: kornia wants ``(B, C, *)``.

    ``(N,)`` inputs become one channel ``(N, 1)``; the argument regions' ``(N, C)`` inputs pass as they are.
    The keywords map one to one where kornia has them: ``reduction``, ``ignore_index`` (given only when
    the case has one; kornia's own default is -100), ``weight`` and ``pos_weight`` as kornia's per-class
    ``(C,)`` vectors (a number becomes C copies). A per-element or per-sample weight or pos_weight raises
    :class:`~focal_ref.testing.frameworks.NotSupported`: the checker skips that case with the message.

    Args:
        fn: the kornia function.
        logits: ``(N,)`` or ``(N, C)`` logits.
        targets: targets of the same shape.
        alpha: the case's alpha.
        gamma: the case's gamma.
        reduction: None (kornia's default ``"none"``), or ``"none"``, ``"sum"``, ``"mean"``.
        weight: None, a number or a ``(C,)`` tensor.
        pos_weight: None, a number or a ``(C,)`` tensor.
        ignore_index: None or the ignored target value.

    Returns:
        The elementwise loss of the shape of ``logits`` (reduction ``"none"``), or kornia's reduced value.

    Raises:
        NotSupported: for a weight or pos_weight kornia cannot express.

    Example:
        >>> import torch
        >>> def channels(x, y, *, alpha, gamma):  # stands for kornia's function: (B, C) in, (B, C) out
        ...     return x * 0 + x.shape[1]
        >>> kornia_binary(channels, torch.zeros(3), torch.ones(3), alpha=0.25, gamma=2.0).tolist()
        [1.0, 1.0, 1.0]
    """
    one_channel = len(logits.shape) == 1
    x, y = (logits[:, None], targets[:, None]) if one_channel else (logits, targets)
    kwargs: dict[str, Any] = {}
    if reduction is not None:
        kwargs["reduction"] = reduction
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    if weight is not None:
        kwargs["weight"] = _per_class(weight, x, "weight")
    if pos_weight is not None:
        kwargs["pos_weight"] = _per_class(pos_weight, x, "pos_weight")
    out = fn(x, y, alpha=alpha, gamma=gamma, **kwargs)
    return out[:, 0] if one_channel and reduction in (None, "none") else out


def kornia_softmax(fn: Any, logits: Any, targets: Any, *, alpha: Any, gamma: float) -> Any:
    """Adapter for ``kornia.losses.focal_loss``: kornia's alpha is one number a, weighting (1 - a, a, ..., a).

    Class 0 is kornia's background. The checker's per-class weights must have that form; kornia returns
    ``(N, C)`` (0 off the target), summed here over C.

    Args:
        fn: the kornia function.
        logits: ``(N, C)`` logits.
        targets: ``(N,)`` class indices.
        alpha: None or C weights of the form (1 - a, a, ..., a).
        gamma: the case's gamma.

    Returns:
        The ``(N,)`` per-sample loss.

    Raises:
        ValueError: for per-class weights kornia cannot express.

    Example:
        >>> import torch
        >>> def kornia_like(x, t, *, alpha, gamma):  # returns (N, C), alpha is one number
        ...     return torch.full(x.shape, alpha)
        >>> x, t = torch.zeros(1, 3), torch.tensor([0])
        >>> kornia_softmax(kornia_like, x, t, alpha=(0.75, 0.25, 0.25), gamma=2.0)
        tensor([0.7500])
    """
    if alpha is not None:
        a = alpha[1]
        if tuple(alpha) != (1.0 - a,) + (a,) * (len(alpha) - 1):
            raise ValueError("kornia's alpha can only express weights (1 - a, a, ..., a)")
        alpha = a
    return fn(logits, targets, alpha=alpha, gamma=gamma).sum(dim=1)
