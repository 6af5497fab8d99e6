"""Decoder accuracy on held-out simulations, model-dir round trip, JAX / PyTensor exports vs torch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sim2real import load_decoder


def test_heldout_accuracy_thresholds(decoder):
    m = decoder.metrics
    # measured at 425 training simulations: NRMSE 0.07-0.11, AUC 0.99, Brier 0.03
    assert m["n_validation"] >= 60
    for name, v in m["nrmse"].items():
        assert v < 0.2, (name, v)
    assert m["nrmse"]["temperature_surface"] < 0.12
    assert m["auc"] > 0.95 and m["brier"] < 0.08
    assert 0.75 < m["coverage90"]["temperature_surface"] <= 1.0


def test_predict_in_si_units(decoder, ensemble):
    th, c = ensemble["theta"].values[:50], ensemble["condition"].values[:50]
    pred = decoder.predict(th, c)
    assert pred["temperature_surface"].dims == ("case", "time")
    err = np.abs(pred["temperature_peak"].values - ensemble["temperature_peak"].values[:50])
    assert np.median(err) < 40.0  # K; training data, median over 50
    assert ((pred["p_runaway"] > 0.5).values == ensemble["thermal_runaway"].values[:50]).mean() > 0.9


@pytest.fixture(scope="module")
def model_dir(decoder, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    decoder.save(d)
    return d


def test_model_dir_roundtrip(decoder, model_dir):
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["decoder"]["nrmse"]["temperature_surface"] == pytest.approx(decoder.metrics["nrmse"]["temperature_surface"])
    assert len(json.loads((model_dir / "hashes.json").read_text())["ensemble"]) == 64
    dec2 = load_decoder(model_dir)
    assert dec2.parameter_names == decoder.parameter_names and dec2.observable_names == decoder.observable_names
    rng = np.random.default_rng(0)
    u, c = rng.normal(size=(20, 3)), np.column_stack([rng.uniform(420, 455, 20), rng.uniform(0.2, 1, 20)])
    a, b = decoder.torch_apply(u, c), dec2.torch_apply(u, c)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    th = rng.uniform(size=(5, 3))
    np.testing.assert_allclose(dec2.to_unconstrained(dec2.from_unconstrained(u)), u, atol=1e-9)
    del th


def test_jax_and_pytensor_match_torch(model_dir):
    import jax
    import pytensor
    import pytensor.tensor as pt

    dec = load_decoder(model_dir)
    rng = np.random.default_rng(1)
    u = rng.normal(size=(4, 6, 3)) * 1.5
    c = np.stack([rng.uniform(418, 458, (4, 6)), rng.uniform(0.2, 1.0, (4, 6))], -1)
    ref = dec.torch_apply(u, c)
    with jax.enable_x64(True):
        j = jax.jit(dec.jax_apply)(u, c)
        gu = jax.grad(lambda uu: dec.jax_apply(uu, c[0, 0])["logit_runaway"].sum())(u[0, 0])
    uu, cc = pt.tensor3("u"), pt.tensor3("c")
    out = dec.pytensor_apply(uu, cc)
    f = pytensor.function([uu, cc], [out["mean"], out["log_scale"], out["logit_runaway"]])
    p = dict(zip(("mean", "log_scale", "logit_runaway"), f(u, c)))
    for k in ("mean", "log_scale", "logit_runaway"):
        assert ref[k].shape == np.asarray(j[k]).shape == p[k].shape
        np.testing.assert_allclose(np.asarray(j[k]), ref[k], atol=1e-5, rtol=0)
        np.testing.assert_allclose(p[k], ref[k], atol=1e-5, rtol=0)
    # gradient agrees with a central finite difference of the torch reference
    e = np.eye(3) * 1e-5
    fd = [(dec.torch_apply(u[0, 0] + d, c[0, 0])["logit_runaway"] - dec.torch_apply(u[0, 0] - d, c[0, 0])["logit_runaway"]) / 2e-5
          for d in e]
    np.testing.assert_allclose(np.asarray(gu), np.array(fd).ravel(), rtol=1e-4, atol=1e-6)
    # single-precision JAX agrees to float32 rounding
    j32 = dec.jax_apply(u.astype(np.float32), c.astype(np.float32))
    np.testing.assert_allclose(np.asarray(j32["mean"]), ref["mean"], atol=1e-4)


def test_runaway_head_refit_restores_an_unfitted_head_and_leaves_observables(decoder, ensemble):
    """`_refit_runaway_head` on a head reset to zero: held-out runaway log loss back near the trained
    decoder's, AUC > 0.95; the observables' predictions unchanged to the last bit (body frozen)."""
    import copy

    import torch

    from sim2real.bridge import ensemble_to_batch
    from sim2real.decoder import _refit_runaway_head, bernoulli_nll

    net = copy.deepcopy(decoder.torch_module).float()
    for p in net.parameters():
        p.requires_grad_(True)
    data = ensemble_to_batch(ensemble, decoder.layout, decoder.transform)
    tr, val = data.subset(torch.arange(0, 400)), data.subset(torch.arange(400, len(data)))

    def nll(b):
        with torch.no_grad():
            return float(bernoulli_nll(b.y, b.y_mask, net(b.u, b.c)["logit_runaway"]).mean())

    trained = nll(val)
    with torch.no_grad():
        before = net(val.u, val.c)
        for p in (*net.runaway.parameters(), *net.runaway_skip.parameters()):
            p.zero_()
    assert nll(val) == pytest.approx(np.log(2.0), rel=1e-6)  # an unfitted head says p = 1/2
    _refit_runaway_head(net, tr, val, decoder.config, torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = net(val.u, val.c)
    assert torch.equal(before["mean"], after["mean"]) and torch.equal(before["log_scale"], after["log_scale"])
    assert nll(val) < min(1.5 * trained, 0.3)
    y, p = val.y.numpy(), torch.sigmoid(after["logit_runaway"]).numpy()
    pos, neg = p[y == 1], p[y == 0]
    assert (pos[:, None] > neg[None, :]).mean() > 0.95  # AUC


def test_numpy_apply_matches_torch_over_shapes_chunks_and_bounds(model_dir, monkeypatch):
    """`FrozenDecoder.numpy_apply`: broadcast leading shapes, padded size classes and chunks give torch's values
    (float32 tolerance), ``bounds`` clip u; an empty input gives empty outputs."""
    import sim2real.frozen as sd

    monkeypatch.setattr(sd, "CHUNK_ROWS", 16)  # exercise chunking and the padded last chunk at test sizes
    monkeypatch.setattr(sd, "MIN_ROWS", 4)
    dec = load_decoder(model_dir)
    rng = np.random.default_rng(2)
    apply, logit = dec.numpy_apply(), dec.numpy_apply("logit_runaway")
    for shape in [(3,), (5, 7), (2, 3, 6), (40,)]:  # 3 → 4 rows; 35 and 36 → chunks of 16; 40 → 3 chunks
        u = rng.normal(size=(*shape, 3))
        c = np.stack([rng.uniform(418, 458, shape[-1]), rng.uniform(0.2, 1.0, shape[-1])], -1)  # broadcast over rows
        ref = dec.torch_apply(u, np.broadcast_to(c, (*shape, 2)).copy())
        out = apply(u, c)
        for k in ref:
            assert out[k].shape == ref[k].shape and out[k].dtype == np.float64
            np.testing.assert_allclose(out[k], ref[k], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(logit(u, c), ref["logit_runaway"], atol=1e-4, rtol=1e-4)
    assert logit(np.zeros((0, 3)), np.zeros((0, 2))).shape == (0,)
    lower, upper = np.full(3, -0.5), np.full(3, 0.5)
    clipped = dec.numpy_apply("logit_runaway", bounds=(lower, upper))
    u = rng.normal(size=(9, 3)) * 3
    c = np.column_stack([rng.uniform(418, 458, 9), rng.uniform(0.2, 1.0, 9)])
    np.testing.assert_allclose(clipped(u, c), dec.torch_apply(np.clip(u, lower, upper), c)["logit_runaway"], atol=1e-4)
