"""The Keras twin of the tiny detector against the PyTorch one: layout, weights, loss and training.

Runs on whatever Keras backend the process has (``KERAS_BACKEND``; TensorFlow by default).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")
from keras import ops  # noqa: E402

from focal_ref.detection import (  # noqa: E402
    AnchorConfig,
    DetectorConfig,
    SceneConfig,
    TinyRetinaNet,
    make_anchors,
    prior_bias,
    retinanet_loss,
    set_determinism,
    train_detector,
)
from focal_ref.detection.keras_model import (  # noqa: E402
    build_keras_retinanet,
    class_targets,
    copy_torch_weights,
    keras_retinanet_loss,
    to_channels_last,
)
from focal_ref.detection.keras_train import train_keras_detector  # noqa: E402

LAYOUTS = [
    (48, AnchorConfig()),  # the default: strides 4 and 8
    (32, AnchorConfig(strides=(4,), sizes=(12.0,), scales=(1.0,), ratios=(0.5, 1.0))),  # one level
    (32, AnchorConfig(strides=(2, 4, 8), sizes=(6.0, 12.0, 24.0))),  # three levels
]


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.mark.parametrize(("canvas", "anchors"), LAYOUTS)
def test_outputs_match_the_torch_model_anchor_for_anchor(canvas, anchors):
    torch.manual_seed(3)
    tm = TinyRetinaNet(3, anchors, width=8)
    km = build_keras_retinanet(3, anchors, canvas, width=8)
    copy_torch_weights(km, tm)
    x = torch.rand(2, 1, canvas, canvas)
    with torch.no_grad():
        t_logits, t_deltas = tm(x)
    k_logits, k_deltas = (_np(v) for v in km(to_channels_last(x.numpy())))
    m = len(make_anchors(canvas, anchors))
    assert k_logits.shape == (2, m, 3) and k_deltas.shape == (2, m, 4)
    assert t_logits.shape == k_logits.shape
    # same weights, same padding, same flattening: equal up to float32 rounding of the convolutions
    np.testing.assert_allclose(k_logits, t_logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(k_deltas, t_deltas.numpy(), rtol=0, atol=1e-5)


def test_flattening_is_level_row_column_anchor():
    # a class head that outputs its channel index plus 100 * (row * w + column) shows the order directly
    anchors = AnchorConfig(strides=(8,), sizes=(24.0,), scales=(1.0,), ratios=(0.5, 1.0))
    km = build_keras_retinanet(2, anchors, 16, width=4)
    head = km.get_layer("cls_head")
    kernel = np.zeros(head.get_weights()[0].shape, "float32")
    head.set_weights([kernel, np.arange(4, dtype="float32")])  # channel c = anchor * K + class
    logits = _np(km(np.zeros((1, 16, 16, 1), "float32"))[0])[0]
    # 2 x 2 locations, A = 2, K = 2: rows of (anchor 0: class 0, 1), (anchor 1: class 0, 1) at each location
    np.testing.assert_array_equal(logits, np.tile([[0, 1], [2, 3]], (4, 1)).astype("float32"))


def test_keras_initialization_follows_the_recipe():
    keras.utils.set_random_seed(0)
    km = build_keras_retinanet(3, AnchorConfig(), 48, width=32, prior=0.01)
    w, b = km.get_layer("cls_head").get_weights()
    np.testing.assert_allclose(b, prior_bias(0.01), rtol=1e-6)
    assert abs(float(w.std()) - 0.01) < 1e-3 and abs(float(w.mean())) < 1e-3
    for name in ("cls_tower", "box_head"):
        w, b = km.get_layer(name).get_weights()
        assert abs(float(w.std()) - 0.01) < 1e-3 and not b.any()
    w, b = km.get_layer("down4").get_weights()  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / np.sqrt(9 * 32)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound and np.abs(b).max() <= bound
    keras.utils.set_random_seed(0)
    again = build_keras_retinanet(3, AnchorConfig(), 48, width=32, prior=None)
    assert not again.get_layer("cls_head").get_weights()[1].any()
    np.testing.assert_array_equal(again.get_layer("down4").get_weights()[0], w)  # seeded


def test_build_and_copy_reject_what_does_not_fit():
    with pytest.raises(ValueError, match="strides"):
        build_keras_retinanet(3, AnchorConfig(strides=(16,)), 48)
    with pytest.raises(ValueError, match="canvas"):
        build_keras_retinanet(3, AnchorConfig(), 44)
    with pytest.raises(ValueError, match="cls_head"):
        copy_torch_weights(build_keras_retinanet(2, AnchorConfig(), 48), TinyRetinaNet(3, AnchorConfig()))


def test_class_targets_mark_the_band_for_ignore_index():
    t = _np(class_targets(np.array([[2, -2, -1, 0]]), 3))
    np.testing.assert_array_equal(t[0], [[0, 0, 1], [0, 0, 0], [-1, -1, -1], [1, 0, 0]])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    gamma=st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]),
    alpha=st.sampled_from([None, 0.25, 0.75, 0.99]),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    pos_rate=st.sampled_from([0.0, 0.02, 0.3]),
)
def test_loss_equals_the_torch_retinanet_loss(seed, gamma, alpha, scale, pos_rate):
    rng = np.random.default_rng(seed)
    b, m, k = 2, 40, 3
    logits = (scale * rng.standard_normal((b, m, k))).astype("float32")
    deltas = rng.standard_normal((b, m, 4)).astype("float32") * 0.3
    targets = rng.standard_normal((b, m, 4)).astype("float32") * 0.3
    u = rng.random((b, m))
    labels = np.where(u < pos_rate, rng.integers(0, k, (b, m)), np.where(u < pos_rate + 0.2, -1, -2))
    t_cls, t_box, t_n = retinanet_loss(
        torch.from_numpy(logits),
        torch.from_numpy(deltas),
        torch.from_numpy(labels),
        torch.from_numpy(targets),
        alpha=alpha,
        gamma=gamma,
    )
    k_cls, k_box, k_n = keras_retinanet_loss(
        logits, deltas, labels.astype("int32"), targets, alpha=alpha, gamma=gamma
    )
    assert float(_np(k_n)) == t_n
    np.testing.assert_allclose(float(_np(k_cls)), float(t_cls), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(_np(k_box)), float(t_box), rtol=2e-5, atol=1e-6)


def _config(**changes) -> DetectorConfig:
    base = DetectorConfig(scenes=SceneConfig(canvas=48, objects=(1, 2)), n_train=64, n_test=20, seed=2)
    return base.replace(**changes)


def test_same_start_and_batches_as_the_torch_run():
    # init="torch": the PyTorch run's initial weights and batch order; after a few AdamW steps the
    # two frameworks' losses differ only by float rounding (and AdamW's epsilon placement)
    cfg = _config(steps=5)
    torch_run = train_detector(cfg)
    keras_run = train_keras_detector(cfg, init="torch")
    assert keras_run["final_loss"] == pytest.approx(torch_run["final_loss"], rel=1e-3)
    assert keras_run["pos_per_image"] == torch_run["pos_per_image"]
    # zero steps: the Keras model holds exactly the PyTorch run's initial weights
    torch0 = train_detector(cfg.replace(steps=0))["model"]
    keras0 = train_keras_detector(cfg.replace(steps=0), init="torch")["model"]
    set_determinism(cfg.seed)
    fresh = TinyRetinaNet(3, cfg.anchors)
    for (name, v), w in zip(torch0.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), name
    km = build_keras_retinanet(3, cfg.anchors, 48)
    copy_torch_weights(km, fresh)
    for x, y in zip(keras0.get_weights(), km.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_training_is_deterministic():
    cfg = _config(steps=6)
    for init in ("torch", "keras"):
        a, b = train_keras_detector(cfg, init=init), train_keras_detector(cfg, init=init)
        assert (a["final_loss"], a["AP"]) == (b["final_loss"], b["AP"])
        wa, wb = a["model"].get_weights(), b["model"].get_weights()
        assert all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def test_a_short_training_run_learns():
    cfg = _config(steps=200, n_train=256, n_test=100, seed=0)
    untrained = train_keras_detector(cfg.replace(steps=0))
    trained = train_keras_detector(cfg)
    assert untrained["AP50"] < 0.05
    assert trained["AP50"] > 0.2, trained  # chance (the untrained detector) is ~0


def test_rejects_configs_it_does_not_run():
    with pytest.raises(ValueError, match="init"):
        train_keras_detector(_config(steps=1), init="numpy")
    with pytest.raises(ValueError, match="ohem"):
        train_keras_detector(_config(steps=1, ohem=3))
    with pytest.raises(ValueError, match="ohem"):
        train_keras_detector(_config(steps=1, class_weight="inverse_frequency"))
    with pytest.raises(ValueError, match="num_pos"):
        train_keras_detector(_config(steps=1, normalization="mean"))


def test_rejects_another_keras_backend_before_building():
    code = (
        "from focal_ref.detection import DetectorConfig\n"
        "from focal_ref.detection.keras_train import train_keras_detector\n"
        "try:\n"
        "    train_keras_detector(DetectorConfig(steps=1))\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="numpy", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "numpy" in done.stdout
