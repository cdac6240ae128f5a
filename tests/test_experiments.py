"""focal_ref.experiments: the toy detection problem, its metric and its training loop."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from focal_ref import experiments as ex
from focal_ref import sigmoid_focal_loss as reference_focal_loss


@pytest.fixture(autouse=True)
def _deterministic():
    # set_determinism changes process-wide torch state; put it back so other test files in the same
    # worker (subnormal accuracy tests in particular) see the defaults
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    ex.set_determinism(0)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def data():
    return ex.make_dataset(256, seed=1), ex.make_dataset(128, seed=2)


# ----------------------------------------------------------------------------------------------
# generator


def test_dataset_shapes_and_imbalance():
    d = ex.make_dataset(600, seed=3)
    assert d.images.shape == (600, 1, 32, 32) and d.images.dtype == np.float32
    assert d.targets.shape == (600, 16, 16) and d.targets.dtype == np.float32
    assert set(np.unique(d.targets)) == {0.0, 1.0}
    per_image = d.targets.sum(axis=(1, 2))
    lo, hi = d.config.objects
    assert per_image.min() >= lo and per_image.max() <= hi  # one positive cell per object, never shared
    # objects ~ uniform{1..4}: mean 2.5 positives in 256 cells = 0.98%; 600 images give sd ~ 0.05 objects
    assert d.positive_rate == pytest.approx(2.5 / 256, rel=0.05)
    assert 0.008 < d.positive_rate < 0.012


def test_dataset_is_deterministic_and_seeded():
    a, b, c = ex.make_dataset(20, seed=7), ex.make_dataset(20, seed=7), ex.make_dataset(20, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(a.images, c.images)


def test_objects_are_bright_at_their_centres():
    cfg = ex.ToyConfig(noise=0.0, distractors=(0, 0))
    d = ex.make_dataset(10, seed=0, config=cfg)
    # without noise or distractors, the image is exactly the objects: 9 pixels each, intensity in range
    lo, hi = cfg.object_intensity
    for image, target in zip(d.images[:, 0], d.targets, strict=False):
        n = int(target.sum())
        assert np.count_nonzero(image) == 9 * n
        assert lo <= image[image > 0].min() and image.max() <= hi


def test_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_images"):
        ex.make_dataset(0, seed=0)
    with pytest.raises(ValueError, match="stride"):
        ex.make_dataset(1, seed=0, config=ex.ToyConfig(image_size=33))


def test_batch_order_walks_epochs():
    order = ex.batch_order(10, steps=7, batch_size=4, seed=0)
    assert order.shape == (7, 4)
    # 2 batches an epoch (the 2 leftover items are dropped); every epoch holds distinct items
    for epoch in range(3):
        items = order[2 * epoch : 2 * epoch + 2].ravel()
        assert len(set(items.tolist())) == items.size
    with pytest.raises(ValueError, match="batch_size"):
        ex.batch_order(3, steps=1, batch_size=4, seed=0)


# ----------------------------------------------------------------------------------------------
# metric


def test_average_precision_hand_worked():
    """Scores 0.9 .. 0.5 with labels 1 0 1 0 1 (3 positives).

    rank 1: TP=1, precision 1,   recall 1/3 -> adds 1/3 * 1
    rank 2: TP=1, precision 1/2, recall 1/3 -> adds 0
    rank 3: TP=2, precision 2/3, recall 2/3 -> adds 1/3 * 2/3
    rank 4: TP=2, precision 2/4, recall 2/3 -> adds 0
    rank 5: TP=3, precision 3/5, recall 1   -> adds 1/3 * 3/5
    AP = (1 + 2/3 + 3/5) / 3 = (15 + 10 + 9) / 45 = 34/45 = 0.7556
    """
    ap = ex.average_precision([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1])
    assert ap == pytest.approx(34 / 45, abs=1e-15)


def test_average_precision_ties_form_one_threshold():
    """Scores 0.9, 0.5, 0.5, 0.1 with labels 1, 0, 1, 0 (2 positives).

    threshold 0.9: TP=1 of 1 detected, recall 1/2 -> adds 1/2 * 1
    threshold 0.5: both tied items enter together: TP=2 of 3, recall 1 -> adds 1/2 * 2/3
    threshold 0.1: recall stays 1 -> adds 0
    AP = 1/2 + 1/3 = 5/6, whatever the order of the tied pair (positive first would give 1).
    """
    scores, labels = np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 0, 1, 0])
    assert ex.average_precision(scores, labels) == pytest.approx(5 / 6, abs=1e-15)
    swapped = [0, 2, 1, 3]
    assert ex.average_precision(scores[swapped], labels[swapped]) == pytest.approx(5 / 6, abs=1e-15)


def test_average_precision_edge_cases():
    assert ex.average_precision([3.0, 2.0, 1.0], [1, 1, 0]) == 1.0  # perfect ranking
    assert ex.average_precision([3.0, 2.0, 1.0], [0, 0, 1]) == pytest.approx(1 / 3)  # worst: P = 1/3 at R = 1
    # all tied: the positive rate
    assert ex.average_precision([1.0, 1.0, 1.0, 1.0], [1, 0, 0, 0]) == pytest.approx(1 / 4)
    assert ex.average_precision([0.2], [1]) == 1.0
    assert ex.average_precision(np.ones((2, 2)), np.ones((2, 2))) == 1.0  # shapes are flattened
    # invariant to any monotone transform of the scores (logits or probabilities rank alike)
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=200), rng.random(200) < 0.1
    probs = 1 / (1 + np.exp(-s))
    assert ex.average_precision(s, y) == pytest.approx(ex.average_precision(probs, y), abs=1e-15)


def test_average_precision_of_random_scores_is_near_the_positive_rate():
    rng = np.random.default_rng(1)
    y = rng.random(200_000) < 0.01
    assert ex.average_precision(rng.random(200_000), y) == pytest.approx(y.mean(), rel=0.15)


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        ([0.1, 0.2], [0, 0], "no positive"),
        ([0.1], [1, 0], "same size"),
        ([np.nan, 0.2], [1, 0], "NaN"),
        ([0.1, 0.2], [2, 0], "0 or 1"),
    ],
)
def test_average_precision_rejects_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        ex.average_precision(scores, labels)


# ----------------------------------------------------------------------------------------------
# model, loss bookkeeping, analysis helpers


def test_set_determinism_flushes_denormals():
    ex.set_determinism(0)
    assert torch.get_num_threads() == ex.DEFAULT_THREADS and torch.are_deterministic_algorithms_enabled()
    assert torch.tensor([1e-310], dtype=torch.float64).mul(1.0).item() == 0.0  # flushed to zero


def test_prior_bias():
    assert ex.prior_bias(0.01) == pytest.approx(-4.59511985013459, abs=1e-12)
    assert ex.prior_bias(None) == 0.0
    assert 1 / (1 + math.exp(-ex.prior_bias(0.2))) == pytest.approx(0.2)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="prior"):
            ex.prior_bias(bad)


def test_loss_config_validates():
    with pytest.raises(ValueError, match="normalization"):
        ex.LossConfig(normalization="sum")
    with pytest.raises(ValueError, match="prior"):
        ex.LossConfig(prior=0.0)


def test_initial_predictions_sit_at_the_prior(data):
    train, _ = data
    model = ex.TinyDetector([0.01, None], seed=0)
    logits = ex.predict(model, train)
    assert logits.shape == (256, 2, 16, 16)
    # sigma-0.01 head weights: every initial logit is within a few tenths of its bias
    np.testing.assert_allclose(logits[:, 0], ex.prior_bias(0.01), atol=0.25)
    np.testing.assert_allclose(logits[:, 1], 0.0, atol=0.25)
    # both copies share every weight but the head bias
    np.testing.assert_allclose(logits[:, 0] - logits[:, 1], ex.prior_bias(0.01), atol=1e-5)


def test_expected_initial_loss_matches_the_first_training_loss(data):
    train, _ = data
    settings = [(2, 0.25, 0.01), (0, 0.75, 0.01), (0, None, None)]
    configs = [ex.LossConfig(gamma=g, alpha=a, prior=p) for g, a, p in settings]
    result = ex.train(configs, train, ex.TrainConfig(steps=1, batch_size=64))
    first_batch = train.targets[ex.batch_order(len(train), 1, 64, 0)[0]]
    rate = float(first_batch.mean())
    for cfg, measured in zip(configs, result.losses[0], strict=False):
        expected = ex.expected_initial_loss(rate, cfg.prior, alpha=cfg.alpha, gamma=cfg.gamma)
        assert measured == pytest.approx(expected, rel=0.03)  # logits sit near, not at, the bias
    # closed form for plain CE at bias 0: every cell costs log 2, divided by the positive count
    assert ex.expected_initial_loss(0.01, None, alpha=None, gamma=0.0) == pytest.approx(math.log(2) / 0.01)


def test_loss_matches_the_reference_at_initialization(data):
    train, _ = data
    cfg = ex.LossConfig(gamma=2.0, alpha=0.25, normalization="mean")
    result = ex.train([cfg], train, ex.TrainConfig(steps=1, batch_size=32))
    model = ex.TinyDetector([cfg.prior], seed=0)
    idx = ex.batch_order(len(train), 1, 32, 0)[0]
    with torch.no_grad():
        logits = model(torch.from_numpy(train.images[idx]))[:, 0].double().numpy()
    expected = reference_focal_loss(logits, train.targets[idx], alpha=0.25, gamma=2.0, reduction="mean")
    assert result.losses[0, 0] == pytest.approx(expected, rel=1e-5)


def test_normalizers(data):
    train, _ = data
    configs = [ex.LossConfig(normalization=n) for n in ("num_pos", "mean", "ema_num_pos")]
    result = ex.train(configs, train, ex.TrainConfig(steps=4, batch_size=16))
    order = ex.batch_order(len(train), 4, 16, 0)
    num_pos = np.maximum(train.targets[order].astype(np.float64).sum(axis=(1, 2, 3)), 1.0)
    np.testing.assert_array_equal(result.normalizers[:, 0], num_pos)
    np.testing.assert_array_equal(result.normalizers[:, 1], 16 * 256)
    ema = [num_pos[0]]
    for n in num_pos[1:]:
        ema.append(0.9 * ema[-1] + 0.1 * n)
    np.testing.assert_allclose(result.normalizers[:, 2], ema, rtol=1e-12)


def test_normalized_loss_cdf():
    frac, cum = ex.normalized_loss_cdf(np.array([2.0, 1.0, 1.0]))
    np.testing.assert_allclose(frac, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(cum, [0, 0.25, 0.5, 1])
    with pytest.raises(ValueError, match="loss"):
        ex.normalized_loss_cdf(np.zeros(3))


# ----------------------------------------------------------------------------------------------
# training


def test_short_training_run_learns(data):
    train, held_out = data
    result = ex.train([ex.LossConfig()], train, ex.TrainConfig(steps=120), eval_data=held_out)
    rate = held_out.positive_rate
    assert result.ap[0] > 20 * rate  # chance level is the positive rate (~0.01)
    assert result.losses[-10:].mean() < 0.5 * result.losses[:10].mean()


def test_training_is_reproducible(data):
    train, _ = data
    cfg = ex.TrainConfig(steps=15)
    a = ex.train([ex.LossConfig(), ex.LossConfig(gamma=0, alpha=0.75)], train, cfg, track_grad_norm=True)
    b = ex.train([ex.LossConfig(), ex.LossConfig(gamma=0, alpha=0.75)], train, cfg, track_grad_norm=True)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.grad_norms, b.grad_norms)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=False):
        assert torch.equal(pa, pb)


def test_copies_train_independently(data):
    """A copy of a two-copy run equals the same loss trained alone (up to float rounding)."""
    train, _ = data
    cfg = ex.TrainConfig(steps=10, lr=0.05)
    good = ex.LossConfig(gamma=2.0, alpha=0.25)
    alone = ex.train([good], train, cfg, track_grad_norm=True)
    together = ex.train([ex.LossConfig(gamma=0.0, alpha=0.75), good], train, cfg, track_grad_norm=True)
    np.testing.assert_allclose(together.losses[:, 1], alone.losses[:, 0], rtol=1e-4)
    np.testing.assert_allclose(together.grad_norms[:, 1], alone.grad_norms[:, 0], rtol=1e-3)


def test_a_diverging_copy_is_frozen_and_harms_no_other(data):
    train, _ = data
    cfg = ex.TrainConfig(steps=12, lr=10.0)  # a learning rate far too large for the num_pos normalization
    # plain CE from bias 0, divided by num_pos, blows up to NaN; the copies divided by all cells
    # (a gradient ~100x smaller) survive
    good = ex.LossConfig(gamma=2.0, alpha=0.25, normalization="mean")
    bad = ex.LossConfig(gamma=0.0, alpha=None, prior=None)
    survivor = ex.LossConfig(gamma=0.0, alpha=0.75, normalization="mean")
    with_bad = ex.train([bad, good], train, cfg)
    with_survivor = ex.train([survivor, good], train, cfg)
    assert with_bad.diverged.tolist() == [True, False]
    assert with_survivor.diverged.tolist() == [False, False]
    first_nan = int(np.argmax(np.isnan(with_bad.losses[:, 0])))
    assert first_nan > 0 and np.isnan(with_bad.losses[first_nan:, 0]).all()
    assert np.isfinite(with_bad.losses[:first_nan, 0]).all()
    np.testing.assert_array_equal(with_bad.losses[:, 1], with_survivor.losses[:, 1])
    # frozen: the diverged copy's weights are exactly those after its last finite step (the run stopped
    # there), although momentum and weight decay would still move them
    stopped = ex.train([bad, good], train, ex.TrainConfig(steps=first_nan, lr=10.0))
    pairs = zip(with_bad.model.copy_weights(0), stopped.model.copy_weights(0), strict=True)
    for (w, b), (w_stop, b_stop) in pairs:
        np.testing.assert_array_equal(w, w_stop)
        np.testing.assert_array_equal(b, b_stop)
        assert np.isfinite(w).all() and np.isfinite(b).all()
    # while the healthy copy kept training
    assert not np.array_equal(with_bad.model.copy_weights(1)[0][0], stopped.model.copy_weights(1)[0][0])


def test_copy_weights_layout():
    model = ex.TinyDetector([0.01, 0.5], width=4)
    w0 = model.copy_weights(0)
    assert [w.shape for w, _ in w0] == [(4, 1, 3, 3), (4, 4, 3, 3), (8, 4, 3, 3), (1, 8, 1, 1)]
    assert w0[-1][1][0] == pytest.approx(ex.prior_bias(0.01))
    assert model.copy_weights(1)[-1][1][0] == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="g must"):
        model.copy_weights(2)


def test_keras_matches_torch_on_the_first_steps(data):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    pytest.importorskip("keras")
    train, _ = data
    cfg = ex.TrainConfig(steps=5)
    torch_run = ex.train([ex.LossConfig()], train, cfg)
    _, keras_losses, _ = ex.train_keras(ex.LossConfig(), train, cfg)
    # same initial weights and batches: the loss before the first update agrees to float32 rounding,
    # and the next few steps stay together
    assert keras_losses[0] == pytest.approx(torch_run.losses[0, 0], rel=1e-5)
    np.testing.assert_allclose(keras_losses, torch_run.losses[:, 0], rtol=1e-3)


def _no_frontend(monkeypatch):
    for name in ("FOCAL_REF_PROGRESS", "JPY_SESSION_NAME", "VSCODE_PID", "VSCODE_CWD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_progress_bars_only_when_asked_or_watched(monkeypatch):
    """None means: a bar in Colab, Jupyter, VS Code or a terminal; none in an executed notebook or pytest."""
    from tqdm.auto import tqdm

    from focal_ref.experiments.progress import progress_bar, someone_watching

    _no_frontend(monkeypatch)
    steps = range(3)
    assert progress_bar(steps, False, 3) is steps
    assert progress_bar(steps, None, 3) is steps  # pytest captures stdout: not a terminal, not a notebook
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    bar = progress_bar(steps, None, 3)
    assert isinstance(bar, tqdm) and list(bar) == [0, 1, 2]
    bar.close()
    assert progress_bar(steps, False, 3) is steps
    monkeypatch.setenv("FOCAL_REF_PROGRESS", "0")  # the override wins, also in Colab
    assert not someone_watching()
    monkeypatch.setenv("FOCAL_REF_PROGRESS", "1")
    monkeypatch.delitem(sys.modules, "google.colab")
    assert someone_watching()


@pytest.mark.parametrize("frontend", ["JPY_SESSION_NAME", "VSCODE_PID"])
def test_progress_in_a_jupyter_or_vscode_kernel_but_not_an_executed_notebook(monkeypatch, frontend):
    from focal_ref.experiments.progress import someone_watching

    _no_frontend(monkeypatch)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert not someone_watching()  # a kernel run by nbclient (nbval, jupyter execute, the book build)
    monkeypatch.setenv(frontend, "1")
    assert someone_watching()  # a kernel of a Jupyter server or of VS Code


def test_train_keras_draws_a_bar_over_its_steps(data, monkeypatch):
    pytest.importorskip("keras")
    import tqdm.auto

    seen = []
    real = tqdm.auto.tqdm

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    train, _ = data
    ex.train_keras(ex.LossConfig(), train, ex.TrainConfig(steps=2), progress=True)
    assert [k["total"] for k in seen] == [2]


# ----------------------------------------------------------------------------------------------
# NumPy-only metrics; AP against scikit-learn; Keras on JAX


def test_metrics_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from focal_ref.experiments import average_precision, expected_initial_loss, make_dataset\n"
        "from focal_ref.experiments.metrics import normalized_loss_cdf\n"
        "ap = average_precision([0.9, 0.1, 0.5], [1, 0, 1])\n"
        "print(ap, round(expected_initial_loss(0.01, 0.01, alpha=0.25, gamma=2.0), 4))\n"
        "assert make_dataset(2, seed=0).images.shape == (2, 1, 32, 32)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0", "1.1285"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 3) | st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), st.booleans()
        ),
        min_size=1,
        max_size=300,
    ).filter(lambda items: any(label for _, label in items))
)
def test_average_precision_matches_scikit_learn(items):
    """Searched: small-integer scores (many ties) mixed with arbitrary floats, any positive rate."""
    from sklearn.metrics import average_precision_score

    scores = np.array([float(v) for v, _ in items])
    labels = np.array([label for _, label in items])
    want = average_precision_score(labels, scores)
    assert ex.average_precision(scores, labels) == pytest.approx(want, rel=1e-12)


def _keras_backend_run(backend, code):
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_ENABLE_X64="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)


def test_train_keras_runs_on_jax_and_matches_torch(data):
    pytest.importorskip("jax")
    train, _ = data
    torch_run = ex.train([ex.LossConfig()], train, ex.TrainConfig(steps=5))
    code = (
        "from focal_ref import experiments as ex\n"
        "train = ex.make_dataset(256, seed=1)\n"
        "config = ex.TrainConfig(steps=5)\n"
        "model, losses, ap = ex.train_keras(ex.LossConfig(), train, config, eval_data=train)\n"
        "print(*losses.tolist(), ap)\n"
    )
    done = _keras_backend_run("jax", code)
    assert done.returncode == 0, done.stderr[-3000:]
    *losses, ap = (float(v) for v in done.stdout.split())
    np.testing.assert_allclose(losses, torch_run.losses[:, 0], rtol=1e-3)
    assert 0.0 < ap <= 1.0  # the trained weights were written back into the model that predicts


def test_train_keras_rejects_other_backends_before_building():
    code = (
        "from focal_ref import experiments as ex\n"
        "try:\n"
        "    ex.train_keras(ex.LossConfig(), ex.make_dataset(8, seed=0), init_from=object())\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    done = _keras_backend_run("numpy", code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not 'numpy'" in done.stdout
