"""Differential search of ``focal_ref.keras`` on the running Keras backend (issue 16).

The README's test command runs this file once per backend (TensorFlow, ``KERAS_BACKEND=torch``,
``KERAS_BACKEND=jax JAX_ENABLE_X64=1``). It draws from the strategies of tests/test_search.py and checks,
in float64, float32, float16 and bfloat16, against the reference on the rounded inputs: the loss (NumPy
arrays, Python lists and, on TensorFlow, ``tf.Variable`` inputs), the gradient and the second derivative
(elementwise for the sigmoid family, Hessian-vector products for the softmax) through the backend's own
autodiff: nested ``GradientTape``, torch double backward, ``jax.grad`` of ``jax.grad``. Tolerances come
from tests/tolerances.py; the long profile (HYPOTHESIS_PROFILE=long) prints what it searched.

Dtype-limit decisions (each where the true value is computed from a number that the dtype, or the backend's
CPU arithmetic, does not hold as a normal number; a representable true value of a representable input must
come out right and does): ``ftz_floor`` (derivatives of the sigmoid family where e^-|x| is subnormal:
flushed by TensorFlow/XLA), ``check_daz`` (probability inputs below the smallest normal: read as 0 by
TensorFlow/XLA; a subnormal p's few significant bits). ``test_dtype_limit_allowances_are_confined`` keeps
both to their band. Faults these searches found are fixed and pinned in tests/test_keras_faults.py.
"""

from __future__ import annotations

import collections
import inspect
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import test_search as S  # noqa: E402  (the module, not its tests: they are collected in their own file)
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from keras import ops  # noqa: E402
from tolerances import tolerance  # noqa: E402

import focal_ref  # noqa: E402
import focal_ref.keras as fk  # noqa: E402

BACKEND = keras.backend.backend()
DTYPES = ["float64", "float32", "float16", "bfloat16"]
COUNTS: collections.Counter = collections.Counter()
# CI profile: JAX traces and compiles every new shape and dtype (about a second each on a shared CPU), so it
# runs 4 examples per test and dtype (the strategies, and so the hard regions they aim at, are the same):
# this file then takes about 25 s (TF), 15 s (torch), 60-90 s (JAX) on the loaded 2-core machine.
# HYPOTHESIS_PROFILE=long runs the full counts times LONG_FACTOR on every backend.
SCALE = 1 / 8 if BACKEND == "jax" and not S.LONG else 1.0


def examples(n: int):
    return S.examples(max(4, round(n * SCALE)))


def coverage_lines():
    lines = [f"{'function / framework / dtype':<64} examples"]
    lines += [f"{key:<64} {n:>8}" for key, n in sorted(COUNTS.items())]
    lines.append("regions hit: " + ", ".join(f"{k}={v}" for k, v in sorted(S.REGIONS.items())))
    return lines


def count(function: str, dtype: str):
    COUNTS[f"{function} / keras-{BACKEND} / {dtype}"] += 1


def test_backend_runs_float64():
    """JAX computes float64 only in x64 mode; without it every float64 check below would be a float32 one."""
    x = ops.convert_to_tensor(np.array([1.0]), dtype="float64")
    assert keras.backend.standardize_dtype(x.dtype) == "float64", f"{BACKEND}: float64 is not float64"


def to_tensor(values, dtype: str):
    """(backend tensor of dtype, float64 numpy of exactly its values)."""
    tensor = ops.convert_to_tensor(np.array(values, dtype=np.float64, order="C"), dtype=dtype)
    return tensor, np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def numpy(tensor):
    return np.asarray(ops.convert_to_numpy(ops.cast(tensor, "float64")), dtype=np.float64)


def derivatives(fn, x, v):
    """(gradient, d/dx of <gradient, v>) of the scalar fn(x) through the backend's autodiff; the second is
    None where the backend raises a clear "not supported" error (allowed by the autograd contract)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = fn(x)
            grad = inner.gradient(loss, x)
            inner_product = tf.reduce_sum(grad * tf.cast(v, grad.dtype))
        second = outer.gradient(inner_product, x)
        return grad, (tf.zeros_like(x) if second is None else second)
    if BACKEND == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x), x, create_graph=True)
        try:
            (second,) = torch.autograd.grad((grad * v).sum(), x, allow_unused=True)
        except (RuntimeError, NotImplementedError) as error:
            if any(s in str(error).lower() for s in S.CLEAR_ERROR):
                return grad.detach(), None
            raise
        return grad.detach(), (torch.zeros_like(x) if second is None else second)
    import jax
    import jax.numpy as jnp

    grad_fn = jax.grad(fn)
    return grad_fn(x), jax.grad(lambda z: jnp.sum(grad_fn(z) * v))(x)


def compute_tiny(dtype: str) -> float:
    """The smallest normal number of the dtype the computation runs in (half precision runs in float32)."""
    return float(np.finfo(np.float64 if dtype == "float64" else np.float32).tiny)


def ftz_floor(x64, dtype: str, kwargs) -> np.ndarray:
    """An absolute floor for sigmoid-family derivatives where sigma(-|x|) = e^-|x| is subnormal in the compute
    dtype (|x| in (87.3, 104] for float32, (708.4, 745] for float64).

    Decision: there every derivative is a sum of terms with the factor e^-|x| (times gamma, CE ~ |x|, the
    weights), and backends flush subnormal intermediates to zero (TensorFlow's and XLA's CPU kernels:
    float32 d2FL/dx2 at x = 88, y = 0 gives 0 for -7.7e-37; JAX float64 at x = 709 gives 0 for -4.3e-306). The
    true value is normal but is computed from a factor that is not representable as a normal number in that
    dtype, so it is allowed an absolute error of about tiny * gamma * (1 + |x|) * weights, no more.
    """
    tiny = compute_tiny(dtype)
    smallest = tiny * np.finfo(np.float64 if dtype == "float64" else np.float32).eps
    ax = np.abs(np.asarray(x64, dtype=np.float64))
    with np.errstate(under="ignore"):
        subnormal = (ax > -np.log(tiny)) & (ax <= -np.log(smallest) + 1.0)
    w = max(1.0, float(np.max(np.abs(kwargs.get("weight", 1.0)), initial=1.0)))
    pw = max(1.0, float(np.max(np.abs(kwargs.get("pos_weight", 1.0)), initial=1.0)))
    gamma = float(kwargs.get("gamma", 2.0))
    return np.where(subnormal, 8.0 * tiny * (1.0 + gamma) ** 2 * (1.0 + ax) * w * pw, 0.0)


def check_daz(out, inputs, reference, dtype, rtol, atol, what, where, scale_fn=None):
    """S.check against the reference at ``inputs``; where an input is subnormal in the compute dtype, the
    reference at the inputs flushed to 0 is accepted too.

    Decision: TensorFlow's and XLA's CPU kernels treat subnormal inputs as zero (DAZ): a probability
    sigma(-709) = 1.2e-308 in float64 reaches log() as 0 (the loss of a positive is then inf, not 709), and
    JAX's categorical_focal_loss of a subnormal class probability is inf, not 707.3. The tensor holds a value
    that the backend's arithmetic does not read; the result is the exact function of what it reads.
    """
    ref = reference(*inputs)
    scale = np.abs(ref) if scale_fn is None else scale_fn(*inputs)
    tiny = compute_tiny(dtype)
    if len(inputs) == 1 and inputs[0].shape == np.shape(ref):
        # Decision: a subnormal probability p holds only log2(p / smallest subnormal) significant bits, and so
        # does the product alpha_t * CE (CE ~ p) that its derivative is formed from: torch float32 at
        # p = sigma(-103) = 2 ulps returns 2/3 of the focal gradient. Relative error up to 4 * smallest / p
        # (below 1e-6 for p > 1e-39 in float32) is allowed there.
        smallest = tiny * np.finfo(np.float64 if dtype == "float64" else np.float32).eps
        p = np.abs(inputs[0])
        with np.errstate(divide="ignore"):
            widen = np.where((p > 0) & (p < tiny), 4.0 * smallest / np.where(p > 0, p, 1.0) / rtol, 0.0)
        scale = np.asarray(scale, dtype=np.float64) * (1.0 + widen)
    try:
        S.check(out, S.dtype_max_ref(ref, dtype), scale, rtol, atol, what, where)
    except S.Mismatch:
        flushed = [np.where(np.abs(v) < tiny, 0.0, v) if v.dtype.kind == "f" else v for v in inputs]
        if all(np.array_equal(a, b) for a, b in zip(flushed, inputs, strict=True)):
            raise
        ref_f = reference(*flushed)
        scale_f = None if scale_fn is None else scale_fn(*flushed)
        S.check(
            out, S.dtype_max_ref(ref_f, dtype), scale_f, rtol, atol, what + " (subnormal inputs as 0)", where
        )


def _kwargs_for(fn, kwargs):
    names = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in names}


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_sigmoid_family(dtype):
    @examples(25)
    @given(S.sigmoid_case(dtype=dtype))
    def search(case):
        x_np, y_np, kwargs, layout = case
        kw = _kwargs_for(fk.sigmoid_focal_loss, kwargs)
        x, x64 = to_tensor(x_np, dtype)
        y, y64 = to_tensor(y_np, dtype)
        ref_kw = dict(kw)
        where = f"backend={BACKEND}, dtype={dtype}, x={x64.tolist()}, y={y64.tolist()}, {ref_kw}"
        ref = S.dtype_max_ref(focal_ref.sigmoid_focal_loss(x64, y64, **ref_kw), dtype)
        rtol, atol = tolerance(dtype, "loss")
        S.check(numpy(fk.sigmoid_focal_loss(x, y, **kw)), ref, None, rtol, atol, "loss", where)
        count("sigmoid_focal_loss", dtype)
        if layout == "list" and dtype == "float64" and np.all(np.abs(x64) < 3e38):  # lists, NumPy arrays
            # Keras reads a Python list in its floatx (float32), as keras.ops does: float32's tolerance
            floatx = keras.backend.floatx()
            rounded = [to_tensor(v, floatx)[1] for v in (x64, y64)]
            S.check(
                numpy(fk.sigmoid_focal_loss(x64.tolist(), y64.tolist(), **kw)),
                S.dtype_max_ref(focal_ref.sigmoid_focal_loss(*rounded, **ref_kw), floatx),
                None,
                *tolerance(floatx, "loss"),
                "list",
                where,
            )
            S.check(numpy(fk.sigmoid_focal_loss(x64, y64, **kw)), ref, None, rtol, atol, "numpy input", where)
            count("sigmoid_focal_loss (lists, NumPy)", dtype)
        if BACKEND == "tensorflow" and layout == "1d":
            import tensorflow as tf

            out = fk.sigmoid_focal_loss(tf.Variable(x), tf.Variable(y), **kw)
            S.check(numpy(out), ref, None, rtol, atol, "tf.Variable input", where)
            count("sigmoid_focal_loss (tf.Variable)", dtype)
        if x64.size == 0 or np.any(np.abs(x64) > 1e300):
            return
        grad, second = derivatives(lambda z: ops.sum(fk.sigmoid_focal_loss(z, y, **kw)), x, ops.ones_like(x))
        g_scale, h_scale = S.sigmoid_scales(x64, y64, ref_kw)
        floor = ftz_floor(x64, dtype, ref_kw)
        rtol_g, atol_g = tolerance(dtype, "grad")
        S.check(
            numpy(grad),
            focal_ref.sigmoid_focal_loss_grad(x64, y64, **ref_kw),
            g_scale + floor / rtol_g,  # the floor as rtol * scale: S.check prints a scalar atol
            rtol_g,
            atol_g,
            "gradient",
            where,
        )
        count("sigmoid_focal_loss_grad (autodiff)", dtype)
        if second is not None:
            rtol_h, atol_h = tolerance(dtype, "hess")
            S.check(
                numpy(second),
                focal_ref.sigmoid_focal_loss_hess(x64, y64, **ref_kw),
                h_scale + floor / rtol_h,
                rtol_h,
                atol_h,
                "second derivative",
                where,
            )
            count("sigmoid_focal_loss_hess (nested autodiff)", dtype)
        p, p64 = to_tensor(focal_ref.sigmoid_parts(x64, 0.0)[0], dtype)
        kw_b = _kwargs_for(fk.binary_focal_loss, kwargs)
        ref_b = focal_ref.binary_focal_loss(p64, y64, **kw_b)
        check_daz(
            numpy(fk.binary_focal_loss(p, y, **kw_b)),
            (p64,),
            lambda q: focal_ref.binary_focal_loss(q, y64, **kw_b),
            dtype,
            *tolerance(dtype, "loss"),
            "binary_focal_loss",
            where,
        )
        count("binary_focal_loss", dtype)
        if p64.size and np.all(np.isfinite(ref_b)):
            grad_p, _ = derivatives(
                lambda z: ops.sum(fk.binary_focal_loss(z, y, **kw_b)), p, ops.ones_like(p)
            )
            check_daz(
                numpy(grad_p),
                (p64,),
                lambda q: focal_ref.binary_focal_loss_grad(q, y64, **kw_b),
                dtype,
                *tolerance(dtype, "grad"),
                "binary_focal_loss gradient wrt probs",
                where,
                # at least |reference|: S.binary_grad_scale gives 0 where a term is 0/0 (p = 0 with y = 0,
                # p = 1 with y = 1), e.g. gamma = 0 with p = sigma(7) rounded to 1 in bfloat16
                scale_fn=lambda q: np.maximum(
                    S.binary_grad_scale(q, y64, kw_b),
                    np.abs(focal_ref.binary_focal_loss_grad(q, y64, **kw_b)),
                ),
            )
            count("binary_focal_loss_grad (autodiff wrt probs)", dtype)

    search()


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_fl_star(dtype):
    @examples(15)
    @given(
        x=st.lists(S.logit_strategy(dtype), min_size=1, max_size=5),
        data=st.data(),
        gamma=st.one_of(st.floats(1e-6, 1.0), st.floats(1.0, 8.0)),
        beta=st.floats(-5.0, 5.0),
        alpha=S.ALPHAS,
    )
    def search(x, data, gamma, beta, alpha):
        y = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(x), max_size=len(x)))
        xt, x64 = to_tensor(x, dtype)
        yt, y64 = to_tensor(y, dtype)
        kw = dict(gamma=gamma, beta=beta, alpha=alpha)
        where = f"backend={BACKEND}, dtype={dtype}, x={x64.tolist()}, y={y64.tolist()}, {kw}"
        ref = S.dtype_max_ref(focal_ref.sigmoid_focal_loss_star(x64, y64, **kw), dtype)
        S.check(
            numpy(fk.sigmoid_focal_loss_star(xt, yt, **kw)),
            ref,
            None,
            *tolerance(dtype, "loss"),
            "FL*",
            where,
        )
        count("sigmoid_focal_loss_star", dtype)
        if np.any(np.abs(x64) > 1e300):
            return
        grad, second = derivatives(
            lambda z: ops.sum(fk.sigmoid_focal_loss_star(z, yt, **kw)), xt, ops.ones_like(xt)
        )
        ref_grad = focal_ref.sigmoid_focal_loss_star_grad(x64, y64, **kw)
        S.check(numpy(grad), ref_grad, np.abs(ref_grad), *tolerance(dtype, "grad"), "FL* gradient", where)
        count("sigmoid_focal_loss_star_grad (autodiff)", dtype)
        if second is not None:
            ref_hess = focal_ref.sigmoid_focal_loss_star_hess(x64, y64, **kw)
            z = np.abs(gamma * x64) + abs(beta)
            S.check(
                numpy(second),
                ref_hess,
                np.abs(ref_hess) * (1.0 + z),
                *tolerance(dtype, "hess"),
                "FL* second derivative",
                where,
            )
            count("sigmoid_focal_loss_star_hess (nested autodiff)", dtype)

    search()


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_softmax_family(dtype):
    @examples(20)
    @given(S.softmax_case(dtype=dtype, max_classes=300))
    def search(case):
        x_np, t_np, kwargs = case
        x, x64 = to_tensor(x_np, dtype)
        if t_np.dtype.kind == "i":
            t, t64 = ops.convert_to_tensor(np.array(t_np, order="C"), dtype="int32"), t_np
        else:
            t, t64 = to_tensor(t_np, dtype)
        kw = _kwargs_for(fk.softmax_focal_loss, kwargs)
        where = (
            f"backend={BACKEND}, dtype={dtype}, logits={x64.tolist()}, "
            f"targets={np.asarray(t64).tolist()}, {kw}"
        )
        ref = focal_ref.softmax_focal_loss(x64, t64, **kw)
        S.check(
            numpy(fk.softmax_focal_loss(x, t, **kw)),
            S.dtype_max_ref(ref, dtype),
            None,
            *tolerance(dtype, "loss"),
            "loss",
            where,
        )
        count("softmax_focal_loss", dtype)
        for reduction in ("mean", "sum"):
            ref_r = focal_ref.softmax_focal_loss(x64, t64, reduction=reduction, **kw)
            S.check(
                numpy(fk.softmax_focal_loss(x, t, reduction=reduction, **kw)),
                S.dtype_max_ref(ref_r, dtype),
                None,
                *tolerance(dtype, "loss"),
                reduction,
                where,
            )
        if x64.size == 0 or np.any(np.abs(x64) > 1e300) or not np.all(np.isfinite(ref)):
            return
        axis = kw["axis"]
        v64 = np.cos(np.arange(x64.size, dtype=np.float64)).reshape(x64.shape)
        v, v64 = to_tensor(v64, dtype)
        grad, hv = derivatives(lambda z: ops.sum(fk.softmax_focal_loss(z, t, **kw)), x, v)
        ref_grad = focal_ref.softmax_focal_loss_grad(x64, t64, **kw)
        g_terms, h_terms = S.softmax_scales(x64, t64, kw, v64)
        g_scale = np.maximum(np.max(np.abs(ref_grad), axis=axis, keepdims=True), g_terms)
        S.check(numpy(grad), ref_grad, g_scale, *tolerance(dtype, "grad"), "gradient", where)
        count("softmax_focal_loss_grad (autodiff)", dtype)
        if hv is not None and x64.shape[axis] <= 64:
            ref_hv = focal_ref.softmax_focal_loss_hvp(x64, t64, v64, **kw)
            hess = focal_ref.softmax_focal_loss_hessian(x64, t64, **kw)
            scale = np.einsum("...jk,...k->...j", np.abs(hess), np.abs(np.moveaxis(v64, axis, -1)))
            scale = np.moveaxis(np.broadcast_to(scale.max(-1, keepdims=True), scale.shape), -1, axis)
            scale = np.maximum(scale, h_terms)
            S.check(numpy(hv), ref_hv, scale, *tolerance(dtype, "hess"), "Hessian-vector product", where)
            count("softmax_focal_loss_hvp (nested autodiff)", dtype)
        p, p64 = to_tensor(np.exp(focal_ref.log_softmax_parts(x64, axis=axis)[0]), dtype)
        kw_c = _kwargs_for(fk.categorical_focal_loss, kwargs)
        check_daz(
            numpy(fk.categorical_focal_loss(p, t, **kw_c)),
            (p64,),
            lambda q: focal_ref.categorical_focal_loss(q, t64, **kw_c),
            dtype,
            *tolerance(dtype, "loss"),
            "categorical_focal_loss",
            where,
        )
        count("categorical_focal_loss", dtype)

    search()


def test_dtype_limit_allowances_are_confined():
    """The two decisions above widen nothing outside their band: ftz_floor is 0 unless e^-|x| is subnormal in
    the compute dtype (and stays below 1e-300 / 1e-34 within it); check_daz accepts the flushed reference only
    where an input is subnormal."""
    x = np.array([0.0, 50.0, 87.0, 88.0, 103.0, 105.0, 700.0, 709.0, 745.0, 800.0, 3e38])
    f32 = ftz_floor(x, "float32", {"gamma": 8.0, "weight": 3.0, "pos_weight": 100.0})
    assert np.all(f32[[0, 1, 2, 5, 6, 7, 8, 9, 10]] == 0.0) and 0.0 < f32[3] < 1e-30 and 0.0 < f32[4] < 1e-30
    f64 = ftz_floor(x, "float64", {"gamma": 2.0})
    assert (
        np.all(f64[[0, 1, 2, 3, 4, 5, 6, 9, 10]] == 0.0) and 0.0 < f64[7] < 1e-300 and 0.0 < f64[8] < 1e-300
    )
    with pytest.raises(S.Mismatch):  # a normal input gets no second chance
        check_daz(
            np.array([np.inf]), (np.array([1e-300]),), lambda q: -np.log(q), "float64", 1e-13, 0.0, "t", ""
        )
    check_daz(np.array([np.inf]), (np.array([1e-310]),), lambda q: -np.log(q), "float64", 1e-13, 0.0, "t", "")


def test_keras_sigmoid_has_issue_13_arguments():
    """API decision 2: weight, pos_weight and ignore_index on the Keras sigmoid family (the search above
    drives them: its cases pass them to both functions)."""
    for fn in (fk.sigmoid_focal_loss, fk.binary_focal_loss):
        missing = {"weight", "pos_weight", "ignore_index"} - set(inspect.signature(fn).parameters)
        assert not missing, f"focal_ref.keras.{fn.__name__} lacks {sorted(missing)}"
