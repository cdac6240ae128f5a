"""The frameworks a check runs in: tensors in, float64 NumPy out, and the framework's own autodiff.

Each wrapper converts the battery's float64 arrays to the framework's tensors of a dtype, reads results
back as float64 NumPy (refusing complex values, whose imaginary part a cast would drop), and
differentiates a callable once (:meth:`value_and_grad`) or twice (:meth:`second_derivatives`: products of
the Hessian of the summed output with given directions). torch, Keras and their backends are imported
only when a wrapper is made, so ``import focal_ref.testing`` needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .regions import dtype_name

__all__ = ["CheckFailure", "NotSupported", "Framework", "make_framework", "setup"]


class CheckFailure(Exception):
    """Raised inside a check when a result cannot be compared (None, complex, wrong shape, no gradient).

    Example:
        >>> make_framework("numpy").to_numpy([1j])
        Traceback (most recent call last):
        ...
        focal_ref.testing.frameworks.CheckFailure: returned complex values (complex128); a result must be real
    """


class NotSupported(Exception):
    """Raised by an adapter for a case its library cannot express: the case is skipped, with this message.

    Example:
        >>> str(NotSupported("kornia's weight is per class, shape (C,)"))
        "kornia's weight is per class, shape (C,)"
    """


def _real(array: np.ndarray, what: str = "result") -> np.ndarray:
    if np.iscomplexobj(array):
        raise CheckFailure(f"returned complex values ({array.dtype}); a {what} must be real")
    if array.dtype == object:
        raise CheckFailure(f"returned an object array, not numbers ({what})")
    return np.asarray(array, dtype=np.float64)


class Framework:
    """NumPy: no autodiff. The base of the torch and Keras wrappers.

    Example:
        >>> fw = make_framework("numpy")
        >>> fw.to_numpy(fw.floats([1, 2], "float32")).dtype
        dtype('float64')
    """

    name = "numpy"
    can_differentiate = False

    def floats(self, array: Any, dtype: str) -> Any:
        """``array`` as the framework's float tensor of ``dtype``."""
        return np.asarray(array, dtype=dtype)

    def indices(self, array: Any) -> Any:
        """``array`` as the framework's int64 tensor."""
        return np.asarray(array, dtype=np.int64)

    def to_numpy(self, value: Any) -> np.ndarray:
        """A result as float64 NumPy; raises :class:`CheckFailure` for None or complex values."""
        if value is None:
            raise CheckFailure("returned None")
        return _real(np.asarray(value))

    def value_and_grad(self, call: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``call(x)`` and d sum(call(x)) / dx, both as float64 NumPy."""
        raise CheckFailure(f"{self.name} cannot differentiate")

    def second_derivatives(
        self, call: Callable[[Any], Any], x: Any, directions: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """H v for each direction v, with H the Hessian of sum(call(x)) at x, as float64 NumPy."""
        raise CheckFailure(f"{self.name} cannot differentiate")


class _Torch(Framework):
    name = "torch"
    can_differentiate = True

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def floats(self, array: Any, dtype: str) -> Any:
        return self.torch.tensor(np.asarray(array, dtype=np.float64)).to(getattr(self.torch, dtype))

    def indices(self, array: Any) -> Any:
        return self.torch.as_tensor(np.asarray(array, dtype=np.int64))

    def to_numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, self.torch.Tensor):
            if value.is_complex():
                raise CheckFailure(f"returned complex values ({value.dtype}); a result must be real")
            return value.detach().cpu().to(self.torch.float64).numpy()
        return super().to_numpy(value)

    def _first(self, call: Callable[[Any], Any], x: Any, create_graph: bool) -> tuple[Any, Any]:
        torch = self.torch
        out = call(x)
        if not isinstance(out, torch.Tensor):
            raise CheckFailure(f"returned {type(out).__name__}, not a tensor")
        if out.is_complex():
            raise CheckFailure(f"returned complex values ({out.dtype}); a result must be real")
        if not out.requires_grad:
            raise CheckFailure("the result does not depend on the logits through autograd")
        (grad,) = torch.autograd.grad(
            out, x, grad_outputs=torch.ones_like(out), allow_unused=True, create_graph=create_graph
        )
        if grad is None:
            raise CheckFailure("autograd gave no gradient for the logits")
        return out, grad

    def value_and_grad(self, call: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray]:
        x = x.detach().clone().requires_grad_(True)
        out, grad = self._first(call, x, create_graph=False)
        return self.to_numpy(out), self.to_numpy(grad)

    def second_derivatives(
        self, call: Callable[[Any], Any], x: Any, directions: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        torch = self.torch
        x = x.detach().clone().requires_grad_(True)
        _, grad = self._first(call, x, create_graph=True)
        if not grad.requires_grad:
            raise CheckFailure("the gradient is not differentiable (no second derivative through autograd)")
        out = []
        for i, v in enumerate(directions):
            vt = torch.as_tensor(v, dtype=grad.dtype)
            (hv,) = torch.autograd.grad(
                grad, x, grad_outputs=vt, allow_unused=True, retain_graph=i < len(directions) - 1
            )
            if hv is None:
                raise CheckFailure("autograd gave no second derivative for the logits")
            out.append(self.to_numpy(hv))
        return out


class _Keras(Framework):
    name = "keras"

    def __init__(self) -> None:
        import keras

        self.keras = keras
        self.backend = keras.backend.backend()
        self.can_differentiate = self.backend in ("tensorflow", "torch", "jax")

    def floats(self, array: Any, dtype: str) -> Any:
        ops = self.keras.ops
        return ops.cast(ops.convert_to_tensor(np.asarray(array, dtype=np.float64)), dtype)

    def indices(self, array: Any) -> Any:
        return self.keras.ops.convert_to_tensor(np.asarray(array, dtype=np.int64))

    def to_numpy(self, value: Any) -> np.ndarray:
        if value is None:
            raise CheckFailure("returned None")
        if "complex" in str(getattr(value, "dtype", "")):
            raise CheckFailure(f"returned complex values ({value.dtype}); a result must be real")
        if hasattr(value, "dtype"):  # cast inside the framework: NumPy cannot hold every framework dtype
            value = self.keras.ops.cast(value, "float64")
        return _real(np.asarray(self.keras.ops.convert_to_numpy(value)))

    def _torch_backend(self) -> _Torch:
        return _Torch()

    def value_and_grad(self, call: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.backend == "torch":
            return self._torch_backend().value_and_grad(call, x)
        if self.backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                tape.watch(x)
                out = call(x)
            if out is None:
                raise CheckFailure("returned None")
            self.to_numpy(out)  # refuses complex values before differentiating
            grad = tape.gradient(out, x)  # a non-scalar target is summed: each logit's total derivative
        else:  # jax
            import jax
            import jax.numpy as jnp

            out, vjp = jax.vjp(call, x)
            if out is None:
                raise CheckFailure("returned None")
            self.to_numpy(out)
            (grad,) = vjp(jnp.ones_like(out))
        if grad is None:
            raise CheckFailure("autodiff gave no gradient for the logits")
        return self.to_numpy(out), self.to_numpy(grad)

    def second_derivatives(
        self, call: Callable[[Any], Any], x: Any, directions: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        if self.backend == "torch":
            return self._torch_backend().second_derivatives(call, x, directions)
        if self.backend == "tensorflow":
            import tensorflow as tf

            out = []
            for v in directions:
                with tf.GradientTape() as outer:
                    outer.watch(x)
                    with tf.GradientTape() as inner:
                        inner.watch(x)
                        value = call(x)
                    if value is None:
                        raise CheckFailure("returned None")
                    grad = inner.gradient(value, x)
                    if grad is None:
                        raise CheckFailure("autodiff gave no gradient for the logits")
                    gv = tf.reduce_sum(grad * tf.cast(v, grad.dtype))
                hv = outer.gradient(gv, x)
                if hv is None:
                    raise CheckFailure("the gradient is not differentiable (nested GradientTape gave None)")
                out.append(self.to_numpy(hv))
            return out
        import jax
        import jax.numpy as jnp

        def grad_fn(z: Any) -> Any:
            value, vjp = jax.vjp(call, z)
            return vjp(jnp.ones_like(value))[0]

        return [
            self.to_numpy(jax.jvp(grad_fn, (x,), (jnp.asarray(v, dtype=x.dtype),))[1]) for v in directions
        ]


def make_framework(name: str) -> Framework:
    """The wrapper of a framework by name (importing it).

    Args:
        name: ``"numpy"``, ``"torch"`` or ``"keras"`` (the active Keras backend).

    Returns:
        A :class:`Framework`.

    Raises:
        ValueError: for any other name.
        ImportError: if the framework is not installed.

    Example:
        >>> make_framework("numpy").can_differentiate
        False
    """
    if name == "numpy":
        return Framework()
    if name == "torch":
        return _Torch()
    if name == "keras":
        return _Keras()
    raise ValueError(f"framework must be 'numpy', 'torch' or 'keras', got {name!r}")


def setup(framework: str, dtype: object) -> tuple[Framework, str]:
    """The framework wrapper and the dtype name, both checked before anything runs.

    Args:
        framework: as :func:`make_framework`.
        dtype: a float dtype or its name; None for float64 in NumPy and float32 otherwise.

    Returns:
        ``(wrapper, dtype name)``.

    Raises:
        ValueError: for an unknown framework or dtype, or bfloat16 in NumPy.

    Example:
        >>> setup("numpy", None)[1]
        'float64'
    """
    if framework not in ("numpy", "torch", "keras"):
        raise ValueError(f"framework must be 'numpy', 'torch' or 'keras', got {framework!r}")
    name = dtype_name(dtype or ("float64" if framework == "numpy" else "float32"))
    if framework == "numpy" and name == "bfloat16":
        raise ValueError("dtype='bfloat16' needs framework='torch' or 'keras' (NumPy has no bfloat16)")
    return make_framework(framework), name
