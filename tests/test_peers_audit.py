"""The audit of published focal losses (focal_ref.peers): verdicts pinned for the pinned versions.

The stored audit (book/blog/results/peer_audit.json, written by scripts/run_peer_audit.py) must be what a
fresh run gives, region by region, for the versions in requirements-audit.txt; and each failing peer's
one-sentence mechanism (focal_ref.peers.FINDINGS) is checked directly on a minimal input.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch

from focal_ref import peers

ROOT = pathlib.Path(__file__).resolve().parents[1]
STORED = json.loads((ROOT / "book" / "blog" / "results" / "peer_audit.json").read_text(encoding="utf-8"))
PINS = dict(
    line.split("==")
    for line in (ROOT / "requirements-audit.txt").read_text(encoding="utf-8").splitlines()
    if "==" in line and not line.startswith("#")
)

keras = pytest.importorskip("keras")
ON_TF = keras.backend.backend() == "tensorflow"


def test_every_peer_is_installed_at_its_pinned_version():
    for peer in peers.PEERS:
        if peer.distribution in PINS:
            assert peer.version() == PINS[peer.distribution], peer.name


@pytest.mark.skipif(not ON_TF, reason="the Keras peers are audited on the TensorFlow backend")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stored_audit_is_what_a_fresh_run_gives(dtype):
    fresh = {row.peer.name: row for row in peers.audit(dtype=dtype)}
    stored = STORED["dtypes"][dtype]
    assert [s["implementation"] for s in stored] == [p.name for p in peers.PEERS]
    for entry in stored:
        row = fresh[entry["implementation"]]
        assert row.version == entry["version"]
        assert row.problem == entry["problem"], entry["implementation"]
        got = {r.region: (r.status, r.cause) for r in row.report.rows}
        want = {region: (v["status"], v["cause"]) for region, v in entry["regions"].items()}
        assert got == want, entry["implementation"]


def test_every_failing_peer_has_its_mechanism_stated():
    failing = {
        e["implementation"]
        for rows in STORED["dtypes"].values()
        for e in rows
        if any(v["status"] == "FAIL" for v in e["regions"].values())
    }
    assert failing == set(peers.FINDINGS)
    assert "optax.losses.sigmoid_focal_loss" not in failing  # the one sigmoid peer that passes everywhere


# ----------------------------------------------------------------------------------------------
# the mechanisms, each on a minimal input


def test_torch_bce_with_logits_rounds_a_small_loss_to_zero_in_float32():
    x, y = torch.tensor([-17.0]), torch.tensor([0.0])
    assert float(torch.nn.functional.binary_cross_entropy_with_logits(x, y)) == 0.0
    assert np.log1p(np.exp(-17.0)) > 4e-8  # the true value


def test_fvcore_computes_float64_input_in_float32():
    from fvcore.nn import sigmoid_focal_loss

    out = sigmoid_focal_loss(
        torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    )
    assert out.dtype == torch.float32


@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_subtracted_one_minus_p_t_gives_nan_gradients_for_gamma_below_one(gamma):
    from fvcore.nn import sigmoid_focal_loss

    x = torch.tensor([17.0], requires_grad=True)
    sigmoid_focal_loss(x, torch.tensor([1.0]), alpha=0.25, gamma=gamma).sum().backward()
    assert torch.isnan(x.grad).all()


def test_kornia_soft_labels_are_a_per_term_mixture():
    import kornia

    import focal_ref

    x, t = np.array([-6.75]), np.array([0.0296])
    out = kornia.losses.binary_focal_loss_with_logits(
        torch.tensor(x)[:, None], torch.tensor(t)[:, None], alpha=0.25, gamma=2.0, reduction="none"
    )
    mix = t * focal_ref.sigmoid_focal_loss(x, [1.0]) + (1 - t) * focal_ref.sigmoid_focal_loss(x, [0.0])
    np.testing.assert_allclose(out.numpy()[:, 0], mix, rtol=1e-12)


def test_smp_p_t_is_exp_of_minus_bce():
    module = peers.load_module("segmentation_models_pytorch.losses._functional")
    x, t = torch.tensor([-6.75], dtype=torch.float64), torch.tensor([0.0296], dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    want = (1 - torch.exp(-bce)) ** 2 * bce * (0.25 * t + 0.75 * (1 - t))
    got = module.focal_loss_with_logits(x, t, gamma=2.0, alpha=0.25, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_toolbelt_softmax_focal_loss_is_not_cross_entropy_at_gamma_zero():
    from focal_ref.peers._adapters import _toolbelt_functional

    module = _toolbelt_functional()
    x = torch.tensor([[0.946, 0.872, 1.94, -1.13, 2.53]])
    t = torch.tensor([4])
    got = float(module.softmax_focal_loss_with_logits(x, t, gamma=0.0, reduction="none")[0])
    ce = float(torch.nn.functional.cross_entropy(x, t))
    assert abs(got - ce) > 1.0


def test_focal_loss_torch_takes_probabilities_with_an_epsilon():
    from focal_loss.focal_loss import FocalLoss

    assert FocalLoss(gamma=0.0).eps == 1e-16


@pytest.mark.skipif(not ON_TF, reason="TensorFlow peers")
def test_keras_categorical_focal_crossentropy_clips_at_1e7():
    x = np.array([[88.0, 0, 0, 0, 0]], dtype="float32")
    got = float(
        keras.losses.categorical_focal_crossentropy(
            np.eye(5)[[0]], x, alpha=1.0, gamma=0.0, from_logits=True
        )[0]
    )
    assert 1e-8 < got < 1e-6  # the true loss is 2.4e-38


@pytest.mark.skipif(not ON_TF, reason="TensorFlow peers")
def test_focal_loss_tf_counts_any_nonzero_soft_label_as_positive_and_rejects_float64():
    import focal_loss
    import tensorflow as tf

    x, soft = tf.constant([-6.75]), tf.constant([0.0296])
    got = float(focal_loss.binary_focal_loss(soft, x, 2.0, from_logits=True)[0])
    bce = float(tf.nn.sigmoid_cross_entropy_with_logits(labels=soft, logits=x)[0])
    p = 1 / (1 + np.exp(6.75))
    np.testing.assert_allclose(got, (1 - p) ** 2 * bce, rtol=1e-5)  # the positive modulation
    with pytest.raises(Exception, match="(?i)double|float"):
        focal_loss.sparse_categorical_focal_loss(
            tf.constant([0]), tf.constant([[1.0, 2.0]], dtype=tf.float64), 2.0, from_logits=True
        )
