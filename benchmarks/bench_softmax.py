"""The softmax focal loss part of the benchmark: forward+backward time, kept bytes and achieved bandwidth.

    python benchmarks/bench_torch.py --loss softmax            # the CPU shapes below
    python benchmarks/bench_torch.py --loss softmax --gpu-sizes --device cuda

Every implementation computes the mean softmax focal loss (gamma=2, no alpha) of float32 logits with
the class axis at dim 1, then its gradient, for index targets and for probability targets (one-hot
smoothed by 0.1, as label smoothing makes them). Compared:

* ``plain``: the formula with ``F.log_softmax``, ``gather`` (or a sum over the classes for probability
  targets), ``expm1`` and ``pow``, differentiated by autograd: the baseline of every ratio;
* ``kornia``: kornia.losses.focal_loss (index targets only; skipped with a note if kornia is missing);
* ``cross_entropy``: ``F.cross_entropy``, the loss at gamma = 0 and the speed of light of any focal loss;
* ``focal_ref``: focal_ref.torch.softmax_focal_loss.

Shapes: segmentation maps (N, C, H, W) with C in {2, 19, 150} and detection / classification rows (M, C)
with C in {19, 80, 1000}. Timing, interleaving and kept bytes as in bench_torch.py.

"must B/el" is the least a forward+backward must move per logit element, whatever the implementation:
the forward reads the logits (4 B) and the targets (8 B per sample of int64 indices, so 8/C per
element; 4 B per element of float32 probabilities), the backward writes the logits' gradient (4 B),
and in between either one float per element is kept (written and read back: 8 B) or nothing is kept
and the backward reads the inputs again; the smaller of the two. That is 16 + 8/C bytes (C > 2: 12 + 16/C
keeping nothing) for index targets and 20 for probability targets; for the sigmoid loss the same count
gives bench_torch.py's 20. The achieved bandwidth is that many bytes over the measured time, for every
implementation alike, as a fraction of a same-device copy.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_torch  # noqa: E402
from bench_torch import _device_name, saved_bytes  # noqa: E402

import focal_ref.torch as ft  # noqa: E402

GAMMA = 2.0
SMOOTHING = 0.1
# about 1M elements each on a CPU; up to 64M on a GPU
CPU_SHAPES = ((8, 2, 256, 256), (4, 19, 128, 128), (2, 150, 64, 64), (65536, 19), (16384, 80), (1024, 1000))
GPU_SHAPES = (
    (32, 2, 1024, 1024),
    (8, 19, 512, 512),
    (4, 150, 256, 256),
    (3145728, 19),
    (786432, 80),
    (65536, 1000),
)
TARGETS = ("index", "probability")


def plain_formula(x, t, gamma=GAMMA):
    """-(1 - p_t)^gamma log p_t (index) or -sum_c y_c (1 - p_c)^gamma log p_c, mean over samples."""
    log_p = F.log_softmax(x, dim=1)
    if t.is_floating_point():
        return -(t * (-torch.expm1(log_p)).pow(gamma) * log_p).sum(1).mean()
    log_p_t = log_p.gather(1, t.unsqueeze(1)).squeeze(1)
    return -((-torch.expm1(log_p_t)).pow(gamma) * log_p_t).mean()


def focal_ref_softmax(x, t):
    return ft.softmax_focal_loss(x, t, alpha=None, gamma=GAMMA, reduction="mean", dim=1)


def focal_ref_keep_inputs(x, t):
    return ft.softmax_focal_loss(x, t, alpha=None, gamma=GAMMA, reduction="mean", dim=1, keep="inputs")


def cross_entropy(x, t):
    return F.cross_entropy(x, t)


def implementations(target: str):
    """name -> loss function of (logits, targets) for this target kind, plus notes on what was left out."""
    impls, notes = {"plain": plain_formula}, []
    if target == "index":
        try:
            from kornia.losses import focal_loss
        except ImportError as error:
            notes.append(f"kornia skipped: {error}")
        else:
            impls["kornia"] = lambda x, t: focal_loss(x, t, alpha=None, gamma=GAMMA, reduction="mean")
    impls["cross_entropy"] = cross_entropy
    impls["focal_ref"] = focal_ref_softmax
    impls["focal_ref keep inputs"] = focal_ref_keep_inputs
    return impls, notes


def make_data(shape, target: str, device, seed=0):
    """float32 logits (std 3) and index or smoothed one-hot targets of 10% / 90% class frequency skew."""
    gen = torch.Generator().manual_seed(seed)
    num_classes = shape[1]
    x = (torch.randn(shape, generator=gen) * 3).to(device)
    index = torch.randint(0, num_classes, (shape[0],) + tuple(shape[2:]), generator=gen).to(device)
    if target == "index":
        return x.requires_grad_(True), index
    smooth = F.one_hot(index, num_classes).movedim(-1, 1).to(torch.float32)  # on the device: 64M on a GPU
    return x.requires_grad_(True), (smooth * (1 - SMOOTHING) + SMOOTHING / num_classes).contiguous()


def must_move_bytes(x, t):
    """Least bytes per logit element any forward+backward moves (see the module docstring)."""
    inputs = 4 + t.element_size() * t.numel() / x.numel()
    return min(inputs + 8 + 4, 2 * inputs + 4)


def shape_label(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def run(shapes=CPU_SHAPES, targets=TARGETS, reps=7, device="cpu", out=print, sample_elements=1_000_000):
    """Benchmark every implementation at every shape and target kind; returns row dicts (also printed)."""
    threads = torch.get_num_threads() if torch.device(device).type == "cpu" else None
    out(
        f"softmax focal loss, gamma {GAMMA}, mean, class dim 1; device: {_device_name(device)}, "
        f"torch {torch.__version__}, threads {threads}, float32, reps {reps}"
    )
    header = (
        f"{'shape':<22} {'target':<11} {'implementation':<14} {'fwd+bwd ms':>11} {'vs plain':>9} "
        f"{'kept B/el':>10} {'must B/el':>10} {'of copy':>8} {'faults':>7}"
    )
    out(header)
    out("-" * len(header))
    rows, noted = [], set()
    for shape in shapes:
        for target in targets:
            impls, notes = implementations(target)
            for note in notes:
                if note not in noted:
                    out(f"note: {note}")
                    noted.add(note)
            x, t = make_data(shape, target, device)
            n = x.numel()
            kept = {name: saved_bytes(fn, x, t) / n for name, fn in impls.items()}
            faults: dict = {}
            ratios: dict = {}
            medians = bench_torch.time_interleaved(
                impls, x, t, reps, sample_elements, faults, ratios, "plain"
            )
            copy = bench_torch.copy_bandwidth(n, device)
            must = must_move_bytes(x, t)
            for name in impls:
                achieved = must * n / medians[name]
                row = dict(
                    loss="softmax",
                    shape=list(shape),
                    elements=n,
                    target=target,
                    implementation=name,
                    ms=medians[name] * 1e3,
                    ratio=ratios[name],
                    kept_bytes_per_element=kept[name],
                    must_move_bytes_per_element=must,
                    bandwidth=achieved,
                    copy_bandwidth=copy,
                    fraction_of_copy=achieved / copy,
                    faults=faults[name],
                )
                rows.append(row)
                out(
                    f"{shape_label(shape):<22} {target:<11} {name:<14} {row['ms']:>11.2f} "
                    f"{row['ratio']:>8.2f}x "
                    f"{kept[name]:>10.2f} {must:>10.2f} {row['fraction_of_copy']:>8.1%} {row['faults']:>7.0f}"
                )
            out(f"{'':<22} same-device copy {copy / 1e9:.1f} GB/s")
    return rows
