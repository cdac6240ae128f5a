r"""Second derivatives of the reference losses (API decision 3), in float64, finite for every finite logit.

* Sigmoid family: the loss is elementwise, so its Hessian is diagonal; :func:`sigmoid_focal_loss_hess` and
  :func:`sigmoid_focal_loss_star_hess` give d^2 FL_i / dx_i^2.
* Softmax: :func:`softmax_focal_loss_hessian` gives each sample's C x C Hessian, and
  :func:`softmax_focal_loss_hvp` the Hessian-vector product.

Every form avoids the powers (1-p_t)^(gamma-2) and (1-p_t)^(gamma-1), which are infinite for gamma < 2
(resp. < 1) as p_t -> 1, by writing them as (1-p_t)^gamma times a bounded ratio. Math: Lin et al., "Focal
Loss for Dense Object Detection" (https://arxiv.org/abs/1708.02002); the derivations are in each docstring.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._reference import sigmoid_terms, star_terms
from ._softmax import ClassAlpha, softmax_terms

__all__ = [
    "sigmoid_focal_loss_hess",
    "sigmoid_focal_loss_star_hess",
    "softmax_focal_loss_hessian",
    "softmax_focal_loss_hvp",
]


def sigmoid_focal_loss_hess(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    weight: npt.ArrayLike | None = None,
    pos_weight: npt.ArrayLike | None = None,
    ignore_index: float | None = None,
) -> np.ndarray:
    r"""Elementwise second derivative d^2 FL_i / dx_i^2 of :func:`focal_ref.sigmoid_focal_loss`.

    With q = 1-p, m = 1-p_t, s = 1-2y, r = pq/m in [0, 1], CE' = (1-y) p - w_+ y q and
    CE'' = ((1-y) + w_+ y) p q:
    dm/dx = s p q, d(pq)/dx = pq (q - p), so d(m^gamma)/dx = gamma m^gamma s r and
    d^2(m^gamma)/dx^2 = m^gamma gamma s r [(gamma-1) s r + (q - p)]. Hence

    .. math::

        \frac{d^2\mathrm{FL}}{dx^2} = w\,\alpha_t\,m^{\gamma}\Bigl[
        \gamma s r\bigl((\gamma-1) s r + q - p\bigr)\,\mathrm{CE}
        + 2\gamma s r\,\mathrm{CE}' + \mathrm{CE}''\Bigr].

    No m^(gamma-1) or m^(gamma-2) appears: finite for every finite logit and gamma >= 0.

    Args:
        logits, targets, alpha, gamma, weight, pos_weight, ignore_index: as in
            :func:`focal_ref.sigmoid_focal_loss`.

    Returns:
        float64 array of the shape of ``logits`` (0 where ignored).

    Raises:
        ValueError, TypeError: as :func:`focal_ref.sigmoid_focal_loss`.

    Example:
        >>> print(float(sigmoid_focal_loss_hess(0.0, 1.0, alpha=None, gamma=0.0)))  # p (1 - p)
        0.25
    """
    t = sigmoid_terms(logits, targets, alpha, gamma, weight, pos_weight, ignore_index)
    g, sr = t.gamma, t.sign * t.r
    bracket = g * sr * ((g - 1.0) * sr + (t.q - t.p)) * t.ce + 2.0 * g * sr * t.d1 + t.d2
    return np.asarray(t.scale * t.mgamma * bracket, dtype=np.float64)


def sigmoid_focal_loss_star_hess(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | None = 0.25,
) -> np.ndarray:
    r"""Elementwise d^2 FL*_i / dx_i^2 of :func:`focal_ref.sigmoid_focal_loss_star`.

    With z = gamma y' x + beta: dFL*/dx = -alpha_t y' sigma(-z), so

    .. math:: \frac{d^2\mathrm{FL}^*}{dx^2} = \alpha_t\,\gamma\,\sigma(z)\,\sigma(-z)
              = \alpha_t\,\gamma\,\frac{e^{-|z|}}{(1 + e^{-|z|})^2},

    evaluated as exp(log(alpha_t gamma) - |z|) / (1 + e^-|z|)^2: no overflow of z or a magnified subnormal.

    Args:
        logits, targets, gamma, beta, alpha: as in :func:`focal_ref.sigmoid_focal_loss_star`.

    Returns:
        float64 array of the shape of ``logits``.

    Raises:
        ValueError, TypeError: as :func:`focal_ref.sigmoid_focal_loss_star`.

    Example:
        >>> print(float(sigmoid_focal_loss_star_hess(0.0, 1, gamma=2.0, beta=0.0, alpha=None)))  # 2 / 4
        0.5
    """
    t = star_terms(logits, targets, alpha, gamma, beta)
    abs_z = np.abs(t.z)
    with np.errstate(divide="ignore"):
        value = np.exp(np.log(t.a * t.gamma) - abs_z) / (1.0 + np.exp(-abs_z)) ** 2
    return np.asarray(value, dtype=np.float64)


def _softmax_pieces(logits, targets, alpha, gamma, axis, ignore_index):
    """(terms, V, a, S, K) of the softmax Hessian H = V^T diag(a) V + S K (classes last; see below)."""
    t = softmax_terms(logits, targets, alpha, gamma, axis, ignore_index)
    x, p, u, g = t.x, t.p, t.u, t.gamma
    c = x.shape[-1]
    eye = np.eye(c, dtype=bool)
    # psi_c = u_c^2 phi''(log p_c) = gamma u^(gamma+1) [p (2 + (gamma-1) h) + p log p]: bounded, p log p -> 0
    p_log_p = p * np.where(p > 0, t.log_p, 0.0)
    a = t.w * g * u ** (g + 1.0) * (p * (2.0 + (g - 1.0) * t.h) + p_log_p)
    # v_c = (e_c - p) / u_c. For c != k (the argmax) u_c >= 1/2. For k,
    # p_j / u_k = e^{x_j} / sum_{l != k} e^{x_l}: the softmax of the other classes, exact also where u_k
    # rounds to 0.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = -p[..., None, :] / u[..., :, None]
    k = np.argmax(x, axis=-1)
    is_k = np.arange(c) == k[..., None]
    if c > 1:
        others = np.where(is_k, -np.inf, x)
        top = np.max(others, axis=-1, keepdims=True)
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(others - top)
        ratio = e / e.sum(axis=-1, keepdims=True)
    else:
        ratio = np.zeros_like(x)
    v = np.where(is_k[..., :, None], -ratio[..., None, :], v)
    v = np.where(eye, 1.0, v)
    v = np.where(np.isfinite(v), v, 0.0)  # rows of a zero a_c (unused); keeps 0 * nan out of the sums
    s = t.wg.sum(axis=-1)
    k_matrix = np.where(eye, (p * u)[..., None, :], -p[..., :, None] * p[..., None, :])
    return t, v, a, s, k_matrix


def softmax_focal_loss_hessian(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
) -> np.ndarray:
    r"""Per-sample Hessian d^2 FL_n / dx_{n,j} dx_{n,l} of :func:`focal_ref.softmax_focal_loss`.

    With l_c = log p_c, phi(l) = -(1 - e^l)^gamma l, w_c = y_c alpha_c and d l_c / dx_j = delta_cj - p_j:

    .. math::

        H = \sum_c w_c\,\phi''(l_c)\,(e_c - p)(e_c - p)^T + S\,(\mathrm{diag}(p) - p p^T),\qquad
        S = \sum_c w_c g_c,\quad g_c = -\phi'(l_c) = u_c^\gamma (1 + \gamma h_c),

    u_c = 1 - p_c, h_c = -p_c l_c / u_c in [0, 1]. Here phi''(l) = gamma u^(gamma-1) p [2 + l + (gamma-1) h],
    infinite as u -> 0 for gamma < 1, but e_c - p is O(u_c): the code uses psi_c = u_c^2 phi''(l_c)
    = gamma u^(gamma+1) [p (2 + (gamma-1) h) + p l] and v_c = (e_c - p) / u_c, whose entries lie in
    [-2, 1] (for the largest class, p_j / u_k is the softmax of the other classes):
    H = sum_c w_c psi_c v_c v_c^T + S K.

    Cost O(C^3) per sample (a reference, not a training kernel).

    Args:
        logits, targets, alpha, gamma, axis, ignore_index: as in :func:`focal_ref.softmax_focal_loss`.

    Returns:
        float64 array of shape ``logits.shape`` without ``axis``, plus ``(C, C)``: the class axis removed
        from its place and two class axes appended. Zero for ignored samples.

    Raises:
        ValueError, TypeError: as :func:`focal_ref.softmax_focal_loss`.

    Example:
        >>> print(softmax_focal_loss_hessian([0.0, 0.0], 0, gamma=0.0).tolist())  # diag(p) - p p^T
        [[0.25, -0.25], [-0.25, 0.25]]
    """
    _, v, a, s, k_matrix = _softmax_pieces(logits, targets, alpha, gamma, axis, ignore_index)
    weighted = v * a[..., :, None]
    hessian = np.swapaxes(weighted, -1, -2) @ v + s[..., None, None] * k_matrix
    return np.asarray(hessian, dtype=np.float64) + 0.0


def softmax_focal_loss_hvp(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    v: npt.ArrayLike,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
) -> np.ndarray:
    r"""Hessian-vector products: (H_n v_n)_j = sum_l d^2 FL_n / dx_{n,j} dx_{n,l} v_{n,l}, per sample.

    The same H as :func:`softmax_focal_loss_hessian`, applied as V^T (a * (V v)) + S K v, O(C^2) per sample.
    Summing over samples, this is the Hessian-vector product of the ``"sum"`` reduction.

    Args:
        logits, targets, alpha, gamma, axis, ignore_index: as in :func:`focal_ref.softmax_focal_loss`.
        v: finite real array of the shape of ``logits`` (the direction, class axis at ``axis``).

    Returns:
        float64 array of the shape of ``logits``.

    Raises:
        ValueError: as :func:`focal_ref.softmax_focal_loss`, or ``v`` of another shape or not finite.
        TypeError: as :func:`focal_ref.softmax_focal_loss`.

    Example:
        >>> print(softmax_focal_loss_hvp([0.0, 0.0], 0, [1.0, 0.0], gamma=0.0).tolist())
        [0.25, -0.25]
    """
    from ._parts import finite_logits

    t, vmat, a, s, k_matrix = _softmax_pieces(logits, targets, alpha, gamma, axis, ignore_index)
    direction = finite_logits(v, "v")
    if direction.shape != np.shape(logits):
        raise ValueError(f"v must have the shape of logits: {direction.shape} != {np.shape(logits)}")
    d = np.moveaxis(direction, t.axis, -1)
    projected = np.einsum("...cj,...j->...c", vmat, d)
    out = np.einsum("...cj,...c->...j", vmat, a * projected)
    out = out + s[..., None] * np.einsum("...jl,...l->...j", k_matrix, d)
    return np.moveaxis(np.asarray(out, dtype=np.float64), -1, t.axis) + 0.0
