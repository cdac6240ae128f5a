"""Forward+backward time and memory kept for backward: focal_ref.torch against other focal losses.

    python benchmarks/bench_torch.py                      # sizes 1e4 ... 1e7, CPU (or CUDA if present)
    python benchmarks/bench_torch.py --sizes 4e6 --reps 15
    python benchmarks/bench_torch.py --quick              # 1e4, 1e5, 1e6
    python benchmarks/bench_torch.py --device cuda --sizes 64e6
    python benchmarks/bench_torch.py --loss softmax       # the softmax loss (bench_softmax.py), CPU shapes
    python benchmarks/bench_torch.py --loss all --gpu-sizes --device cuda   # both, at GPU sizes (64M)

Every implementation computes the mean sigmoid focal loss (alpha=0.25, gamma=2) of float32 logits
against hard 0/1 labels, then its gradient. Compared:

* ``torchvision``: torchvision.ops.sigmoid_focal_loss's formula, written out here exactly as its source
  runs it (torchvision itself is not needed), differentiated by autograd;
* ``kornia``: kornia.losses.binary_focal_loss_with_logits (skipped with a note if kornia is missing);
* ``blog``: the blog post's PyTorch FocalLoss, rebuilt as published in focal_ref.blog (it takes
  probabilities, so the timed region includes the sigmoid); skipped with a note if focal_ref.blog is absent;
* ``focal_ref``: focal_ref.torch.sigmoid_focal_loss, closed-form backward;
* ``focal_ref fused``: the same through torch.compile (``fused=True``); its one-off compile is reported
  separately and not timed. ``--no-fused`` leaves it out.

Timing: the implementations run interleaved (A B C A B C ...), one forward+backward each per round, after
a warm-up round; the table gives the median over rounds and, as the ratio to torchvision's formula,
the median over rounds of the two times' ratio within a round (paired: see :func:`time_interleaved`).
Before any timing the C allocator is put in a training loop's steady state
(:func:`warm_allocator`; ``--cold-allocator`` skips that): left to glibc's defaults, whether a
temporary's pages are faulted in depends on the process's history, and the implementation that
allocates most pays most. "faults" is the median of minor page faults per call.

"kept B/el" is the bytes autograd keeps for backward per element beyond the inputs, counted exactly
with torch.autograd.graph.saved_tensors_hooks (each storage once).

The script also reports focal_ref's achieved bandwidth: the bytes a two-pass closed-form
forward+backward must move (forward reads logits and targets and writes the kept gradient; backward
reads it and writes the logits' gradient: 20 bytes per float32 element) divided by its time, as a
fraction of a measured copy on the same device (2 x 4 bytes per element moved). On CUDA that is the
figure to hold against the copy bandwidth; on a CPU it shows how far the loss is from memory-bound.

``--loss softmax`` (or ``all``) runs the softmax focal loss part, benchmarks/bench_softmax.py: the same
measurements over segmentation and classification shapes, index and probability targets, against the
plain formula, kornia and ``F.cross_entropy``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import torch
import torch.nn.functional as F

import focal_ref.torch as ft

ALPHA, GAMMA = 0.25, 2.0
MUST_MOVE_BYTES = 20  # per float32 element, see the module docstring


def torchvision_formula(x, y, alpha=ALPHA, gamma=GAMMA):
    """torchvision.ops.sigmoid_focal_loss (v0.15+), line for line, then reduction="mean"."""
    p = torch.sigmoid(x)
    ce_loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * y + (1 - alpha) * (1 - y)
        loss = alpha_t * loss
    return loss.mean()


def focal_ref_eager(x, y):
    return ft.sigmoid_focal_loss(x, y, alpha=ALPHA, gamma=GAMMA, reduction="mean")


def focal_ref_keep_inputs(x, y):
    return ft.sigmoid_focal_loss(x, y, alpha=ALPHA, gamma=GAMMA, reduction="mean", keep="inputs")


def focal_ref_fused(x, y):
    return ft.sigmoid_focal_loss(x, y, alpha=ALPHA, gamma=GAMMA, reduction="mean", fused=True)


def implementations(fused=True):
    """name -> loss function of (logits, targets), plus notes on what was left out and why."""
    impls, notes = {"torchvision": torchvision_formula}, []
    try:
        from kornia.losses import binary_focal_loss_with_logits
    except ImportError as error:
        notes.append(f"kornia skipped: {error}")
    else:
        # kornia wants (B, C, ...) input; one row of N "classes" is the same elementwise loss.
        impls["kornia"] = lambda x, y: binary_focal_loss_with_logits(
            x.view(1, -1), y.view(1, -1), alpha=ALPHA, gamma=GAMMA, reduction="mean"
        )
    try:
        from focal_ref.blog.torch_blog import FocalLoss as BlogFocalLoss
    except ImportError as error:
        notes.append(f"blog skipped: focal_ref.blog is not available ({error})")
    else:
        # as published it takes probabilities (apply the sigmoid first) and hard-codes .cuda();
        # device= lifts that.
        impls["blog"] = lambda x, y: BlogFocalLoss(alpha=ALPHA, gamma=2, size_average=True, device=x.device)(
            torch.sigmoid(x), y
        )
    impls["focal_ref"] = focal_ref_eager
    impls["focal_ref keep inputs"] = focal_ref_keep_inputs
    if fused:
        impls["focal_ref fused"] = focal_ref_fused
    return impls, notes


def saved_bytes(fn, x, y):
    """Bytes autograd keeps for backward of fn(x, y), excluding x's and y's storage; each storage once."""
    inputs = {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
    kept = {}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in inputs:
            kept[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    x = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = fn(x, y)
    loss.backward()
    return sum(kept.values())


def make_data(n, device, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, generator=gen) * 3).to(device=device, dtype=dtype)
    y = (torch.rand(n, generator=gen) < 0.1).to(device=device, dtype=dtype)
    return x.requires_grad_(True), y


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
"""wall: elapsed time (the default). cpu: this thread's CPU time, user + system (page faults included):
on a shared CPU with one thread it leaves out the time the thread waits for a core, so that other
load moves the ratios less; meaningless for CUDA (the host thread waits)."""
clock = CLOCKS["wall"]


def time_interleaved(impls, x, y, reps, sample_elements=1_000_000, faults=None, ratios=None, baseline=None):
    """Median seconds of one forward+backward per implementation, rounds interleaved A B C A B C.

    Below ``sample_elements`` each sample averages several calls (about that many elements' worth),
    so that one sample is not a single scheduler tick. ``faults``: a dict to fill with each
    implementation's median minor page faults per call (the allocator's share of the time).
    ``ratios``: a dict to fill with each implementation's median over rounds of its time divided by
    ``baseline``'s time in the same round. Paired so: on a shared machine the speed drifts over a run,
    and a round's two times share its speed, where the ratio of two medians mixes rounds of different
    speeds (on the project's 2-core machine, four runs of (4, 19, 128, 128) gave ratios of medians from
    0.73 to 0.82 and paired ratios from 0.746 to 0.761).
    """
    device = x.device
    inner = max(1, sample_elements // x.numel())
    times = {name: [] for name in impls}
    page_faults = {name: [] for name in impls}
    for round_ in range(reps + 1):  # round 0 warms up and is dropped
        for name, fn in impls.items():
            _sync(device)
            before = minor_faults()
            start = clock()
            for _ in range(inner):
                x.grad = None
                fn(x, y).backward()
            _sync(device)
            if round_:
                times[name].append((clock() - start) / inner)
                page_faults[name].append((minor_faults() - before) / inner)
    if faults is not None:
        faults.update({name: statistics.median(counts) for name, counts in page_faults.items()})
    if ratios is not None:
        base = times[baseline]
        for name, ts in times.items():
            ratios[name] = statistics.median(t / b for t, b in zip(ts, base, strict=True))
    return {name: statistics.median(ts) for name, ts in times.items()}


ALLOCATOR_WARM_BYTES = 31 << 20
# glibc's mallopt parameters (malloc.h) and the values set: requests up to 32 MiB (glibc's largest mmap
# threshold) from the heap, and freed heap memory kept rather than trimmed back to the kernel
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 << 20, 1 << 30


def warm_allocator() -> str:
    """Put the C allocator in a training loop's steady state; returns what was done, for the record.

    glibc's malloc serves a request above its mmap threshold (128 KiB at the start) with fresh pages
    from the kernel, each 4 KiB faulted in on first touch, and it hands freed memory at the top of its
    heap back to the kernel once more than the trim threshold is free there. Left to itself it raises
    both thresholds as blocks are freed, so whether a temporary is page-faulted depends on the whole
    process's history, and with it the time of the implementation that allocates most. A training
    loop that keeps its memory (PyTorch's CUDA caching allocator, jemalloc or tcmalloc on a CPU) pays
    for its temporaries' pages only in its first step.
    Here glibc is told so: requests up to 32 MiB come from the heap, and freed memory is kept
    (``mallopt``); every implementation then runs without page faults below 32 MiB per tensor, which
    each row's ``faults`` (minor page faults per call) shows. Where ``mallopt`` is missing (not glibc),
    one freed 31 MiB block raises glibc-like dynamic thresholds instead.
    """
    try:
        libc = ctypes.CDLL(None)
        set_option = libc.mallopt
    except (OSError, AttributeError):
        set_option = None
    if (
        set_option is not None
        and set_option(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and set_option(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    ):
        return (
            "warm: glibc mallopt M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB "
            "(temporaries up to 32 MiB from a heap that is not trimmed: no page faults after the first call)"
        )
    block = torch.ones(ALLOCATOR_WARM_BYTES // 4)
    del block
    return "warm: one 31 MiB block allocated and freed before timing (no mallopt here)"


def minor_faults() -> int:
    """This process's minor page faults so far (0 where the resource module is missing)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def copy_bandwidth(n, device, reps=10):
    """Bytes per second of a device-to-device copy of n float32 elements (read + write)."""
    src = torch.empty(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    times = []
    for _ in range(reps):
        start = clock()
        dst.copy_(src)
        _sync(device)
        times.append(clock() - start)
    return 2 * 4 * n / statistics.median(times)


def run(sizes, reps=7, device="cpu", fused=True, out=print, sample_elements=1_000_000):
    """Benchmark every implementation at every size; returns a list of row dicts (also printed)."""
    impls, notes = implementations(fused)
    for note in notes:
        out(f"note: {note}")
    if fused:
        x, y = make_data(1000, device)
        start = time.perf_counter()
        focal_ref_fused(x, y).backward()
        out(f"note: focal_ref fused compiled in {time.perf_counter() - start:.1f} s (one-off, not timed)")
    threads = torch.get_num_threads() if torch.device(device).type == "cpu" else None
    out(f"device: {_device_name(device)}, torch {torch.__version__}, threads {threads}, float32, reps {reps}")
    rows = []
    header = f"{'elements':>10}  {'implementation':<16} {'fwd+bwd ms':>11} {'vs torchvision':>15} "
    header += f"{'kept B/el':>10} {'faults':>7}"
    out(header)
    out("-" * len(header))
    for n in sizes:
        x, y = make_data(n, device)
        kept = {name: saved_bytes(fn, x, y) / n for name, fn in impls.items()}
        faults: dict = {}
        ratios: dict = {}
        medians = time_interleaved(impls, x, y, reps, sample_elements, faults, ratios, "torchvision")
        for name in impls:
            row = dict(
                elements=n,
                implementation=name,
                ms=medians[name] * 1e3,
                ratio=ratios[name],
                kept_bytes_per_element=kept[name],
                faults=faults[name],
            )
            rows.append(row)
            out(
                f"{n:>10.0e}  {name:<16} {row['ms']:>11.2f} {row['ratio']:>14.2f}x "
                f"{row['kept_bytes_per_element']:>10.2f} {row['faults']:>7.0f}"
            )
        copy = copy_bandwidth(n, device)  # on CPU too: how far from memory-bound the loss runs there
        for name in ("focal_ref", "focal_ref fused"):
            if name in medians:
                achieved = MUST_MOVE_BYTES * n / medians[name]  # the least any forward+backward moves
                out(
                    f"{'':>10}  {name} bandwidth {achieved / 1e9:.1f} GB/s = {achieved / copy:.0%} of a "
                    f"same-device copy ({copy / 1e9:.1f} GB/s)"
                )
                rows.append(
                    dict(
                        elements=n,
                        implementation=name,
                        bandwidth=achieved,
                        copy_bandwidth=copy,
                        fraction_of_copy=achieved / copy,
                        must_move_bytes_per_element=MUST_MOVE_BYTES,
                    )
                )
    return rows


def _commit() -> str:
    """The checkout's commit (with "+changes" where the measured code, focal_ref/ and benchmarks/*.py,
    differs from it), or "unknown" outside git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "focal_ref", "benchmarks/*.py"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _device_name(device):
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--loss",
        choices=("sigmoid", "softmax", "all"),
        default="sigmoid",
        help="which loss to benchmark (default sigmoid; softmax: bench_softmax.py)",
    )
    parser.add_argument(
        "--sizes", default="1e4,1e5,1e6,4e6,1e7", help="comma-separated element counts (sigmoid)"
    )
    parser.add_argument(
        "--gpu-sizes",
        action="store_true",
        help="GPU sizes: sigmoid 1e6,16e6,64e6 and the softmax shapes of about 32-64M elements",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1e4,1e5,1e6 and 5 rounds")
    parser.add_argument("--reps", type=int, default=7, help="timed rounds per implementation (default 7)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads for the CPU run (default: torch's)"
    )
    parser.add_argument("--no-fused", action="store_true", help="leave out the torch.compile path")
    parser.add_argument(
        "--softmax-shapes", help="softmax shapes, e.g. '4x19x128x128,1024x1000' (default: CPU or GPU set)"
    )
    parser.add_argument(
        "--sample-elements",
        type=float,
        default=1e6,
        help="below this many elements one timing sample averages several calls (default 1e6)",
    )
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: the thread's CPU time (one thread on a shared CPU)",
    )
    parser.add_argument(
        "--cold-allocator",
        action="store_true",
        help="skip the allocator warm-up (time a fresh process's page faults; see warm_allocator)",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (torch.device(args.device).type != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu measures one CPU thread: use it with --device cpu --threads 1")
    global clock
    clock = CLOCKS[args.clock]
    sizes = [1e4, 1e5, 1e6] if args.quick else [float(s) for s in args.sizes.split(",")]
    if args.gpu_sizes:
        sizes = [1e6, 16e6, 64e6]
    reps = 5 if args.quick else args.reps
    allocator = "cold: no warm-up" if args.cold_allocator else warm_allocator()
    print(f"allocator {allocator}")
    rows = []
    meta = dict(
        device=_device_name(args.device),
        torch=torch.__version__,
        reps=reps,
        clock=args.clock,
        ratio="paired",  # each ratio: the median over rounds of the ratio within a round
        allocator=allocator,
        commit=_commit(),
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        command=" ".join(["bench_torch.py", *(sys.argv[1:] if argv is None else argv)]),
        machine=dict(platform=platform.platform(), processor=platform.machine(), cpus=os.cpu_count()),
    )

    def save():  # after each loss, so that a run cut short keeps what it measured
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(dict(meta, rows=rows), handle, indent=1)

    if args.loss in ("sigmoid", "all"):
        sigmoid_sizes = [int(s) for s in sizes]
        for row in run(
            sigmoid_sizes,
            reps=reps,
            device=args.device,
            fused=not args.no_fused,
            sample_elements=int(args.sample_elements),
        ):
            rows.append(dict(row, loss="sigmoid"))
        save()
    if args.loss in ("softmax", "all"):
        import bench_softmax

        bench_softmax.bench_torch.clock = clock  # run as a script, this module is __main__, not bench_torch

        shapes = bench_softmax.GPU_SHAPES if args.gpu_sizes else bench_softmax.CPU_SHAPES
        if args.softmax_shapes:
            shapes = [tuple(int(d) for d in shape.split("x")) for shape in args.softmax_shapes.split(",")]
        rows += bench_softmax.run(
            shapes, reps=reps, device=args.device, sample_elements=int(args.sample_elements)
        )
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
