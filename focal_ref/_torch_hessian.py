"""Second-derivative kernels of :mod:`focal_ref.torch`, in closed form (Lin et al. 2017,
https://arxiv.org/abs/1708.02002, differentiated twice).

The sigmoid-family losses and the probability-input categorical loss are elementwise in their input,
so their Hessian is diagonal: ``*_hess`` gives d2FL/dx2 per element. The softmax loss couples the
classes of a sample: :func:`softmax_hvp` gives the per-sample Hessian times a vector. Each form avoids
0^(gamma-1) and exp(gamma log m), so it is finite for every finite logit and every gamma >= 0 (also
0 < gamma < 1 at saturation, where autograd of the plain formula gives NaN or inf).
"""

from __future__ import annotations

import torch

from ._torch_kernels import binary_alpha_t, power
from ._torch_softmax import focal_h, log_softmax_parts, others_sum


def sigmoid_hess(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None,
    gamma: float,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """d2FL/dx2 of the sigmoid focal loss, elementwise.

    With m = 1 - p_t, s = 1 - 2y, r = p q / m in [0, 1], CE' = dCE/dx (p - y, or (1-y) p - w+ y q with
    ``pos_weight`` w+), CE'' = p q (1 - y + w+ y), E = gamma s r CE + CE' (so that
    dFL/dx = alpha_t m^gamma E), dm^gamma/dx = gamma s r m^gamma and dr/dx = r (q - p) - s r^2:

        d2FL/dx2 = alpha_t m^gamma [gamma s r (E + (q - p - s r) CE + CE') + CE''].

    Every factor is bounded (r <= 1), so the value is finite; where m underflowed to 0, m^gamma = 0 for
    gamma > 0 and the value is alpha_t CE'' for gamma = 0.
    """
    p, q = sigmoid_pair(x)
    l = torch.abs(x).neg_().exp_().log1p_()  # noqa: E741  -log p = relu(-x) + l, -log(1-p) = relu(x) + l
    m = torch.lerp(p, q, y)
    pq = p * q
    if pos_weight is None:
        ce = torch.clamp_min(x, 0.0).lerp(torch.clamp_min(-x, 0.0), y) + l
        d_ce = torch.lerp(p, -q, y)
        d2_ce = pq
    else:  # CE = -[w+ y log p + (1-y) log(1-p)]
        pos = pos_weight * y
        ce = pos * (torch.clamp_min(-x, 0.0) + l) + (1.0 - y) * (torch.clamp_min(x, 0.0) + l)
        d_ce = (1.0 - y) * p - pos * q
        d2_ce = pq * (pos + 1.0 - y)
    bracket = d2_ce
    if gamma != 0.0:
        s = 1.0 - 2.0 * y
        r = (pq / m).nan_to_num_(0.0)
        r_ce = torch.where(r > 0, r * ce, 0.0)  # 0 also where CE overflowed (w+ |x| > max): no 0 * inf
        e = gamma * s * r_ce + d_ce
        bracket = gamma * s * (r * (e + d_ce) + (q - p - s * r) * r_ce) + d2_ce
    # gamma > 1: m^gamma = h h, h = m^(gamma/2), applied as (bracket h) h: no subnormal intermediate where
    # the product is normal (as in the first-order kernels)
    half = power(m, gamma / 2.0) if gamma > 1.0 else None
    hess = bracket if half is None else bracket * half * half
    m_gamma = None if half is not None else power(m, gamma)
    hess = hess if m_gamma is None else m_gamma * hess
    alpha_t = binary_alpha_t(alpha, y)
    return hess if alpha_t is None else alpha_t * hess


def sigmoid_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma(x), sigma(-x)), each to the last bit also where it is subnormal.

    ``torch.sigmoid(x)`` is 1 / (1 + e^-x): for x < -log(max) (-709.8 in float64, -88.7 in float32) e^-x
    overflows and it returns 0 where the true value is subnormal (4.5e-309 at x = -710), and the
    second derivative multiplies that value by CE ~ |x| into a normal number. Here the small one of the
    pair is e^-|x| / (1 + e^-|x|), the large one 1 / (1 + e^-|x|): no overflow.
    """
    e = torch.abs(x).neg_().exp_()
    big = e.add(1.0).reciprocal_()
    small = e.mul_(big)
    positive = x >= 0
    return torch.where(positive, big, small), torch.where(positive, small, big)


def star_hess(
    x: torch.Tensor, y: torch.Tensor, alpha: float | None, gamma: float, beta: float
) -> torch.Tensor:
    """d2FL*/dx2 = alpha_t gamma sigma(z) sigma(-z), z = gamma y' x + beta (y'^2 = 1)."""
    sign = 2.0 * y - 1.0
    z = sign * x * gamma + beta
    hess = gamma * torch.sigmoid(z) * torch.sigmoid(-z)
    alpha_t = binary_alpha_t(alpha, y)
    return hess if alpha_t is None else alpha_t * hess


def binary_hess(
    p: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None,
    gamma: float,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """d2FL/dp2 of the probability-input binary loss, elementwise, at face value.

    With m = y(1-p) + (1-y)p, s = 1 - 2y, c = CE/m (limit 1 where m = 0):

        d2FL/dp2 = alpha_t [gamma m^(gamma-1) ((gamma-1) s^2 c + 2 s dCE/dp) + m^gamma d2CE/dp2],

    dCE/dp = -y/p + (1-y)/(1-p), d2CE/dp2 = y/p^2 + (1-y)/(1-p)^2, each term masked by its weight.
    At m = 0 with 0 < gamma < 1 the true value is +inf, and so is this.
    """
    alpha_t = binary_alpha_t(alpha, y)
    a = torch.ones_like(p) if alpha_t is None else alpha_t
    y_pos = y if pos_weight is None else pos_weight * y  # CE = -[w+ y log p + (1-y) log(1-p)]
    pos, neg = y_pos * a > 0, (1.0 - y) * a > 0
    one = torch.ones_like(p)
    p_pos, q_neg = torch.where(pos, p, one), torch.where(neg, 1.0 - p, one)
    log_p = torch.where(pos, torch.log(p_pos), 0.0)
    log_q = torch.where(neg, torch.log1p(-torch.where(neg, p, 0.0)), 0.0)
    ce = -(y_pos * log_p + (1.0 - y) * log_q)
    m = y * (1.0 - p) + (1.0 - y) * p
    d_ce = torch.where(pos, -y_pos / p_pos, 0.0) + torch.where(neg, (1.0 - y) / q_neg, 0.0)
    d2_ce = torch.where(pos, y_pos / p_pos / p_pos, 0.0) + torch.where(neg, (1.0 - y) / q_neg / q_neg, 0.0)
    m_gamma = power(m, gamma)
    hess = d2_ce if m_gamma is None else m_gamma * d2_ce
    if gamma != 0.0:
        c = torch.where(m > 0, ce / torch.where(m > 0, m, 1.0), 1.0)
        s = 1.0 - 2.0 * y
        hess = hess + gamma * m.pow(gamma - 1.0) * ((gamma - 1.0) * s * s * c + 2.0 * s * d_ce)
    return a * hess


def categorical_hess(p: torch.Tensor, w: torch.Tensor, gamma: float) -> torch.Tensor:
    """d2FL/dp_c2 of the probability-input categorical loss (diagonal in p), at face value.

    With u = 1 - p and log p / u -> -1 where u = 0:
    w [gamma u^(gamma-1) ((1 - gamma) log p / u + 2/p) + u^gamma / p^2].
    """
    u = 1.0 - p
    active = w > 0
    p_safe = torch.where(active, p, 1.0)
    log_p = torch.where(active, torch.log(p_safe), 0.0)
    u_gamma = power(u, gamma)
    hess = 1.0 / p_safe / p_safe
    if u_gamma is not None:
        hess = u_gamma * hess
    if gamma != 0.0:
        log_p_over_u = torch.where(u > 0, log_p / torch.where(u > 0, u, 1.0), -1.0)
        hess = hess + gamma * u.pow(gamma - 1.0) * ((1.0 - gamma) * log_p_over_u + 2.0 / p_safe)
    return torch.where(active, w * hess, 0.0)


def softmax_hvp(x: torch.Tensor, w: torch.Tensor, gamma: float, dim: int, v: torch.Tensor) -> torch.Tensor:
    """Per-sample Hessian of -sum_c w_c u_c^gamma log p_c (p = softmax(x) along ``dim``) times ``v``.

    With g_c = u_c^gamma (1 + gamma h_c), S = sum_c w_c g_c, the centred vector vb_j = v_j - p.v and
    q_c = w_c p_c psi'(p_c) vb_c, psi(p) = p d/dp[u^gamma log p]:

        (H v)_j = p_j (S vb_j + sum_{c != j} q_c) - u_j q_j,
        p psi'(p) = gamma u^gamma [h - (p/u)(2 + (gamma - 1) h)].

    p/u is unbounded only for the dominant class k (u_k -> 0); there vb_k = u_k sum_c (p_c/u_k)(v_k - v_c)
    is formed directly, so q_k = gamma w_k u_k^gamma [h_k vb_k - p_k (2 + (gamma-1) h_k) vb_k/u_k] stays
    finite and accurate. The sums over c != j use the heaviest-class form (:func:`others_sum`).
    """
    log_p, u = log_softmax_parts(x, dim)
    p = log_p.exp()
    k = x.argmax(dim, keepdim=True)
    is_k = torch.zeros_like(p, dtype=torch.bool).scatter_(dim, k, True)
    h = focal_h(p, log_p, u)
    u_gamma = power(u, gamma)
    g = torch.ones_like(p) if u_gamma is None else u_gamma * (1.0 + gamma * h)
    big_s = (w * g).sum(dim, keepdim=True)
    u_k = u.gather(dim, k)
    ratio = torch.where(is_k | (u_k <= 0), 0.0, p / torch.where(u_k > 0, u_k, 1.0))  # p_c / u_k <= 1
    v_k = v.gather(dim, k)
    vb_k_over_u = (ratio * (v_k - v)).sum(dim, keepdim=True)
    vb = torch.where(is_k, u_k * vb_k_over_u, v - (p * v).sum(dim, keepdim=True))
    hv = p * big_s * vb
    if u_gamma is not None:  # gamma != 0
        factor = 2.0 + (gamma - 1.0) * h
        p_over_u = torch.where(is_k, 0.0, p / torch.where(is_k, 1.0, u))  # <= 1 off the dominant class
        scaled = torch.where(is_k, h * vb - p * factor * vb_k_over_u, (h - p_over_u * factor) * vb)
        q = gamma * w * u_gamma * scaled
        hv = hv + p * others_sum(q, dim, signed=True) - u * q
    return hv
