"""focal_ref.distributed: the positive count over a real 2-process gloo group (CPU, loopback only)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import focal_ref
import focal_ref.torch as ft
from focal_ref.distributed import PositiveNormalizer, num_positives
from focal_ref.torch import PositiveNormalizer as TorchPositiveNormalizer

IGNORE = -1.0


def _batch(seed: int = 0):
    """Anchor logits and one-hot targets (anchors, K) with some anchors in the ignore band."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 3, generator=gen, dtype=torch.float64) * 3
    targets = torch.zeros(64, 3, dtype=torch.float64)
    positives = torch.randperm(64, generator=gen)[:7]
    targets[positives, torch.randint(0, 3, (7,), generator=gen)] = 1.0
    targets[torch.randperm(64, generator=gen)[:9]] = IGNORE  # whole anchors ignored (IoU band)
    targets[positives[:2]] = 0.0  # ... but never a positive one
    targets[positives[:2], 0] = 1.0
    return logits, targets


def _summed_loss(logits, targets):
    keep = targets != IGNORE
    loss = ft.sigmoid_focal_loss(logits, torch.where(keep, targets, 0.0), reduction="none")
    return (loss * keep).sum()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank, world, port, split, queue):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        logits, targets = _batch()
        part = slice(*split[rank])  # uneven split: the workers see different numbers of positives
        x = logits[part].clone().requires_grad_(True)
        normalizer = PositiveNormalizer()(targets[part], ignore_index=IGNORE)
        loss = _summed_loss(x, targets[part]) / normalizer
        loss.backward()
        # what DistributedDataParallel does: average the loss and the gradients over the workers
        total = loss.detach().clone()
        dist.all_reduce(total)
        grads = [torch.zeros_like(logits) for _ in range(world)]
        full = torch.zeros_like(logits)
        full[part] = x.grad
        dist.all_gather(grads, full)
        count = float(num_positives(targets[part], ignore_index=IGNORE))  # a collective: every rank calls it
        if rank == 0:
            queue.put((float(total) / world, (sum(grads) / world).numpy(), count))
    finally:
        dist.destroy_process_group()


def test_the_mean_loss_and_gradient_do_not_depend_on_the_split():
    logits, targets = _batch()
    x = logits.clone().requires_grad_(True)
    n_pos = float(num_positives(targets, ignore_index=IGNORE))  # no group: the local count
    assert n_pos == float((targets == 1).sum())
    one_process = _summed_loss(x, targets) / n_pos
    one_process.backward()

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    split = [(0, 10), (10, 64)]
    assert float((targets[0:10] == 1).sum()) != float((targets[10:] == 1).sum())
    mp.start_processes(_worker, args=(2, _free_port(), split, queue), nprocs=2, start_method="spawn")
    mean_loss, mean_grad, global_count = queue.get(timeout=60)
    assert global_count == n_pos  # summed over both workers
    np.testing.assert_allclose(mean_loss, float(one_process), rtol=1e-13)
    np.testing.assert_allclose(mean_grad, x.grad.numpy(), rtol=1e-12, atol=1e-300)
    # and the value is the reference's: the focal loss summed over non-ignored anchors / num_pos
    keep = (targets != IGNORE).numpy()
    expected = focal_ref.sigmoid_focal_loss(logits.numpy()[keep], targets.numpy()[keep], reduction="sum")
    np.testing.assert_allclose(mean_loss, expected / n_pos, rtol=1e-13)


def test_a_per_worker_count_would_depend_on_the_split():
    """The fault the normalizer prevents: dividing each worker's sum by its own count."""
    logits, targets = _batch()
    parts = [slice(0, 10), slice(10, 64)]
    local = [
        float(_summed_loss(logits[p], targets[p]) / max(float((targets[p] == 1).sum()), 1.0)) for p in parts
    ]
    right = float(_summed_loss(logits, targets) / float((targets == 1).sum()))
    assert abs(sum(local) / 2 - right) > 1e-3 * right


def test_normalizer_without_a_group_is_the_local_count_floored():
    assert PositiveNormalizer()(torch.tensor([0.0, 1.0, 1.0, -1.0]), ignore_index=-1) == 2.0
    assert PositiveNormalizer()(torch.zeros(5)) == 1.0  # no positives: the floor, not a division by 0
    assert PositiveNormalizer(min_count=0.5)(torch.zeros(5)) == 0.5


def test_normalizer_moving_average_is_detectron2s():
    normalizer = PositiveNormalizer(momentum=0.9, initial=100.0)
    value = 100.0
    for count in (3, 0, 12, 5):
        targets = torch.zeros(20)
        targets[:count] = 1.0
        value = 0.9 * value + 0.1 * max(count, 1)
        assert normalizer(targets) == pytest.approx(value, rel=1e-15)


def test_counts_soft_targets_by_their_mass_and_is_detached():
    targets = torch.tensor([0.25, 0.5, 1.0], requires_grad=True)
    count = num_positives(targets)
    assert float(count) == 1.75 and not count.requires_grad and count.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"momentum": 1.0}, ValueError),
        ({"momentum": -0.1}, ValueError),
        ({"momentum": "0.9"}, TypeError),
        ({"initial": 0.0}, ValueError),
        ({"min_count": float("nan")}, ValueError),
        ({"min_count": True}, TypeError),
    ],
)
def test_bad_arguments_are_named(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        PositiveNormalizer(**kwargs)


def test_bad_inputs_to_num_positives():
    with pytest.raises(TypeError, match="targets"):
        num_positives([1.0, 0.0])
    with pytest.raises(TypeError, match="ignore_index"):
        num_positives(torch.zeros(2), ignore_index="x")


def test_the_normalizer_is_part_of_focal_ref_torch():
    assert TorchPositiveNormalizer is PositiveNormalizer
