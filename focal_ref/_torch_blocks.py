"""Cache-sized blocks on CPU for :mod:`focal_ref.torch`'s kernels: elementwise and per sample.

Eager PyTorch makes one pass over memory per operation, and a fresh temporary's pages are faulted in on
first touch; over a block that stays in cache neither costs. The kernels' formulas are elementwise or per
sample, so a block gives the values one call would (up to the last-bit differences PyTorch's SIMD and
scalar loops already have).
"""

from __future__ import annotations

import functools
import glob
import math

import torch

from . import _torch_kernels as _k

# Elements per block for the per-sample (softmax) kernels on CPU; also the scale of "large": inputs of up
# to 2 * CPU_BLOCK elements run in one call in every kernel. On the project's first 2-core machine (1 MiB
# L2 per core, 32 MiB L3) the elementwise kernels at 4M and 10M float32 elements ran 1.3-1.7x faster in
# 256k blocks than in one pass over the whole tensor.
CPU_BLOCK = 1 << 18

# Elements per block for the elementwise (sigmoid, binary, FL*) kernels: a block's ~5 float32
# temporaries (1.25 MiB) stay in a 2 MiB L2. On the current machine (2 MiB L2 per core) the sigmoid
# loss, forward+backward, ran 17-21% faster in 64k blocks than in 256k ones at 1M, 4M and 10M elements
# (128k blocks were slower than 64k at 1M and 4M; 32k slower at 1M and no faster at 4M). The one-call
# bound stays 2 * CPU_BLOCK: each block decides for itself whether m^gamma is split
# (_torch_kernels.split_power), so blocking smaller inputs would move last bits, and the book's stored
# detector experiments (at most 326,592 elements per call) re-run bit for bit; 64k blocks were about 5%
# faster at that size.
ELEMENTWISE_BLOCK = 1 << 16


# Full-size buffers the softmax probability kernel holds at once (logits, targets and its own six).
PROB_BUFFERS = 8


@functools.cache
def last_level_cache_bytes() -> int | None:
    """The largest CPU cache Linux reports for cpu0, in bytes (``None`` where it reports none)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "")
        if number.isdigit():
            sizes.append(int(number) * units.get(unit, 1))
    return max(sizes) if sizes else None


def outgrows_cache(x: torch.Tensor, buffers: int) -> bool:
    """Whether ``buffers`` tensors of ``x``'s size and dtype outgrow the CPU's last-level cache (True where
    its size is unknown: block, as on a small cache).

    Blocks pay where the kernel's buffers would otherwise stream through main memory once per pass.
    Where they all fit in the last-level cache, blocks only add per-call overhead: the softmax
    probability kernel at about 1M float32 elements ran 10-40% faster in one call than in 256k blocks on
    a CPU with a 300 MiB L3 (2 MiB L2), and faster in blocks on one with a 32 MiB L3 (1 MiB L2).
    """
    cache = last_level_cache_bytes()
    return cache is None or buffers * x.numel() * x.element_size() > cache


def _total(loss: torch.Tensor) -> torch.Tensor:
    """A 0-d sum that cannot overflow where the mean is finite: float32 losses are summed in float64."""
    return loss.sum(dtype=torch.float64) if loss.dtype != torch.float64 else loss.sum()


def in_cpu_blocks(kernel, x, y, need_grad: bool, summed: bool = False, blocks: bool = True):
    """``kernel(x, y, need_grad, out)`` -> (loss, D), block by block on CPU for large inputs (``out``:
    the block's view of the gradient buffer, where a kernel may write D and return it; else copied).

    The kernels are ~20 elementwise passes. Over a whole large tensor each pass streams it through
    main memory, and each fresh temporary's pages must be faulted in; over a block that fits in cache
    neither happens. Above 2 * :data:`CPU_BLOCK` elements the blocks are :data:`ELEMENTWISE_BLOCK` long.
    The formulas are elementwise, so the values are those of one call up to the last bit: PyTorch's SIMD
    and scalar loops may differ there, and the m^gamma form is chosen per block (``split_power``). With
    ``summed`` each block's loss is added up as it is made (in float64). On CUDA blocking would only add
    launches.
    """
    n = x.numel()
    if not blocks or x.device.type != "cpu" or n <= 2 * CPU_BLOCK:
        loss, grad = kernel(x, y, need_grad, None)
        return (_total(loss) if summed else loss), grad
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    loss_buffer = torch.empty(0) if summed else torch.empty_like(flat_x)
    block_sums = []
    grad_buffer = torch.empty_like(flat_x) if need_grad else torch.empty(0)
    for start in range(0, n, ELEMENTWISE_BLOCK):
        block = slice(start, start + ELEMENTWISE_BLOCK)
        out = grad_buffer[block] if need_grad else None
        block_loss, block_grad = kernel(flat_x[block], flat_y[block], need_grad, out)
        if summed:
            block_sums.append(_total(block_loss))
        else:
            loss_buffer[block] = block_loss
        if out is not None and block_grad is not out:
            out.copy_(block_grad)
    loss = torch.stack(block_sums).sum() if summed else loss_buffer.view(x.shape)
    return loss, grad_buffer.view(x.shape) if need_grad else None


def in_sample_blocks(
    kernel, x, target, dim: int, indices: bool, need_grad: bool, summed: bool, blocks: bool = True
):
    """``kernel(x3, t, need_grad, out)`` -> (loss, D) of a per-sample loss, over cache-sized blocks on CPU.

    The logits are viewed as (A, C, B) (A: the axes before the class axis, B: those after), and the
    kernel runs on blocks of about :data:`CPU_BLOCK` elements: whole rows of A where a row fits, else
    chunks of B within one row. Why: as for :func:`in_cpu_blocks`; a per-sample kernel is ~10-20 passes,
    half of them over per-sample tensors, and over a block every pass stays in cache and no fresh
    temporary is faulted in. Each sample's values are those of one call (the kernels are per sample);
    only the exponentials' shift may be taken per block (:func:`focal_ref._torch_softmax_index._exp_shift`).
    The class axis is 1 inside the kernel. ``out``: the block's view of the gradient buffer (``None``
    for one call), where a kernel may write D and return it: no copy of D afterwards.
    """
    n, classes = x.numel(), x.shape[dim]
    a, b = math.prod(x.shape[:dim]), math.prod(x.shape[dim + 1 :])
    blocked = (
        blocks
        and x.device.type == "cpu"
        and n > 2 * CPU_BLOCK
        and x.is_contiguous()
        and target.is_contiguous()
        and not _k.wrapped(x)
        and not torch.compiler.is_compiling()
    )
    x3 = x.reshape(a, classes, b)
    t3 = target.reshape(a, b) if indices else target.reshape(a, classes, b)
    if not blocked:
        loss, d = kernel(x3, t3, need_grad, None)
        loss = loss.reshape(x.shape[:dim] + x.shape[dim + 1 :])
        return (_total(loss) if summed else loss), (None if d is None else d.view(x.shape))
    rows = CPU_BLOCK // max(classes * b, 1)
    if rows >= 1:
        spans = [(slice(i, i + rows), slice(None)) for i in range(0, a, rows)]
    else:
        cols = max(CPU_BLOCK // classes, 1)
        spans = [(slice(i, i + 1), slice(j, j + cols)) for i in range(a) for j in range(0, b, cols)]
    loss_buffer = x.new_empty(0) if summed else x.new_empty(a, b)
    grad_buffer = torch.empty_like(x3) if need_grad else x.new_empty(0)
    sums = []
    for ra, rb in spans:
        out = grad_buffer[ra, :, rb] if need_grad else None
        lb, db = kernel(x3[ra, :, rb], t3[ra, rb] if indices else t3[ra, :, rb], need_grad, out)
        if summed:
            sums.append(_total(lb))
        else:
            loss_buffer[ra, rb] = lb
        if out is not None and db is not out:
            out.copy_(db)
    loss = torch.stack(sums).sum() if summed else loss_buffer.view(x.shape[:dim] + x.shape[dim + 1 :])
    return loss, (grad_buffer.view(x.shape) if need_grad else None)
