"""focal_ref.torch.sigmoid_focal_loss against torchvision's ops.sigmoid_focal_loss (gpu_check.py step 3)."""

from __future__ import annotations

import importlib.metadata


def torchvision_comparison(devices: list[str], n: int = 100_000) -> tuple[list[dict], str]:
    """focal_ref.torch.sigmoid_focal_loss against torchvision.ops.sigmoid_focal_loss: worst errors.

    Logits are N(0, 2^2) clipped to [-6, 6], where torchvision's 1 - p_t has lost at most 2.4e-5 of its
    float32 precision; targets hard and soft; gamma 0, 0.5, 1, 2, 5; alpha 0.25 and off (torchvision's
    -1); reductions none, mean and sum. Gradients of the sum, through each one's autograd. A row fails
    when the two differ by more than rtol (1e-9 float64, 1e-3 float32) relative to torchvision's value
    plus 1e-6 of the largest one. Without torchvision (the dry run here), a copy of its function.
    """
    import torch

    import focal_ref.torch as ft

    try:
        from torchvision.ops import sigmoid_focal_loss as tv_loss

        source = "torchvision " + importlib.metadata.version("torchvision")
    except ImportError:

        def tv_loss(inputs, targets, alpha, gamma, reduction):  # torchvision/ops/focal_loss.py, line for line
            p = torch.sigmoid(inputs)
            ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
            p_t = p * targets + (1 - p) * (1 - targets)
            loss = ce_loss * ((1 - p_t) ** gamma)
            if alpha >= 0:
                loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
            return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

        source = "torchvision's formula, copied (torchvision is not installed here)"
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(n, generator=gen, dtype=torch.float64) * 2).clamp(-6, 6)
    hard = (torch.rand(n, generator=gen, dtype=torch.float64) < 0.3).double()
    soft = torch.rand(n, generator=gen, dtype=torch.float64)
    rows = []
    for device in devices:
        for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-3)):
            worst = {"loss": 0.0, "grad": 0.0}
            for targets in (hard, soft):
                for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
                    for alpha in (0.25, None):
                        reductions = ("sum", "mean") if targets is soft else ("sum", "mean", "none")
                        for reduction in reductions:
                            results = []
                            for fn in ("focal_ref", "torchvision"):
                                x = (
                                    logits.to(device=device, dtype=dtype)
                                    .detach()
                                    .clone()
                                    .requires_grad_(True)
                                )
                                y = targets.to(device=device, dtype=dtype)
                                if fn == "focal_ref":
                                    loss = ft.sigmoid_focal_loss(
                                        x, y, alpha=alpha, gamma=gamma, reduction=reduction
                                    )
                                else:
                                    loss = tv_loss(x, y, -1 if alpha is None else alpha, gamma, reduction)
                                loss.sum().backward()
                                results.append((loss.detach().double().cpu(), x.grad.double().cpu()))
                            (ours, our_grad), (theirs, their_grad) = results
                            for key, a, b in (("loss", ours, theirs), ("grad", our_grad, their_grad)):
                                scale = b.abs() + 1e-6 * b.abs().max() / rtol
                                worst[key] = max(worst[key], float(((a - b).abs() / scale).max()))
            for key, error in worst.items():
                rows.append(
                    dict(
                        device=device,
                        dtype=str(dtype).removeprefix("torch."),
                        what=key,
                        worst=error,
                        rtol=rtol,
                        ok=bool(error <= rtol),
                    )
                )
    return rows, source
