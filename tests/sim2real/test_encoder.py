"""Encoder on real-like tests with known θ: frozen decoder, discrepancy, misspecification, calibration."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sim2real import EncoderConfig
from sim2real.validation import recovery_rmse, sample_coverage, sbc_ranks, sbc_uniformity_pvalue
from tests.sim2real.conftest import FAST_ENCODER


@pytest.fixture(scope="module")
def fitted(decoder, real):
    before = {k: v.clone() for k, v in decoder.torch_module.state_dict().items()}
    fit = decoder.fit_encoder(real, EncoderConfig(**FAST_ENCODER), generator=torch.Generator().manual_seed(5))
    return fit, before


def test_decoder_weights_unchanged_by_encoder_training(decoder, fitted):
    _, before = fitted
    after = decoder.torch_module.state_dict()
    assert set(before) == set(after)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not any(p.requires_grad for p in decoder.torch_module.parameters())


def test_posterior_draws_discrepancy_and_metrics(fitted, real, decoder, tmp_path):
    fit, _ = fitted
    post = fit.posterior(200, torch.Generator().manual_seed(0))
    assert post["theta"].shape == (80, 200, 3)
    lo = np.array([p.support[0] for p in decoder.transform.priors])
    hi = np.array([p.support[1] for p in decoder.transform.priors])
    assert np.all(post["theta"].values > lo) and np.all(post["theta"].values < hi)
    d = fit.discrepancy
    assert set(d) == {c.name for c in decoder.layout.channels}
    # noise of the real-like tests is 1 K; the learned extra sd on the curve is of that order
    assert 0.05 < d["temperature_surface"] < 10.0
    # the data inform θ: recovery error clearly below the prior sd (=1 in u)
    ut = decoder.to_unconstrained(real["theta_true"].values)
    rmse = recovery_rmse(ut, fit.loc.numpy())
    assert rmse.mean() < 0.9, rmse
    decoder.save(tmp_path, fit)
    assert (tmp_path / "encoder.pt").exists()


def test_misspecification_flags_tests_the_simulator_cannot_produce(fitted, real, decoder, ensemble):
    fit, _ = fitted
    bad = real.isel(test=slice(0, 10)).copy(deep=True)
    t = bad["time"].values
    # a heater-like linear ramp to 900 K without a runaway plateau: not an oven-cell curve
    bad["temperature_surface"][:] = 298.15 + (900 - 298.15) * t / t[-1] + 40 * np.sin(t / 300.0)
    good = real.isel(test=slice(10, 70))
    import xarray as xr
    mixed = xr.concat([good, bad], dim="test")
    fit2 = decoder.fit_encoder(mixed, EncoderConfig(**FAST_ENCODER), generator=torch.Generator().manual_seed(6))
    chk = fit2.misspecification(ensemble, generator=torch.Generator().manual_seed(0))
    flagged = chk["flagged"].values
    assert flagged[-10:].mean() >= 0.8, chk.isel(test=slice(-10, None))
    assert flagged[:-10].mean() <= 0.15
    # the simulator-support distance separates them (the PPC alone does not: the posterior moves to
    # where the decoder predicts a large variance)
    sup = chk["support_pvalue"].values
    assert np.median(sup[-10:]) < 0.01 < np.median(sup[:-10])


def test_calibration_of_intervals_on_simulated_real_tests(decoder, real):
    """50 % / 90 % central intervals cover ≈ 50 % / 90 % of the true θ over 80 tests × 3 parameters (±15 pp).

    Default pipeline: amortised initialisation, ELBO on the 80 tests, importance-corrected posterior.
    """
    cfg = EncoderConfig(**{**FAST_ENCODER, "pretrain_steps": 600, "steps": 300})
    fit = decoder.fit_encoder(real, cfg, generator=torch.Generator().manual_seed(7))
    post = fit.posterior(1000, torch.Generator().manual_seed(8))
    ut = decoder.to_unconstrained(real["theta_true"].values)
    draws = decoder.to_unconstrained(post["theta"].values)
    cov = sample_coverage(ut, draws)
    assert abs(cov[0.5].mean() - 0.5) < 0.15, cov
    assert abs(cov[0.9].mean() - 0.9) < 0.15, cov
    assert np.median(post["ess"].values) > 50
    # SBC ranks are not grossly non-uniform (pooled over parameters)
    ranks = sbc_ranks(ut, draws[:, ::10])
    assert sbc_uniformity_pvalue(ranks.reshape(-1, 1), 100)[0] > 1e-4


def test_saved_encoder_reloads_and_infers_new_tests(fitted, real, decoder, tmp_path):
    """The encoder on the user's path: saved with the model, loaded without its training tests, it gives the
    same amortised posterior of any tests, with their outcome hidden as for a newly measured test."""
    from sim2real import load_encoder

    fit, _ = fitted
    decoder.save(tmp_path, fit)
    loaded = load_encoder(tmp_path)
    new = real.isel(test=slice(0, 5))
    for a, b in zip(fit.encode(new), loaded.encode(new)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="pass the tests"):
        loaded.posterior(10)
    unscored = new.drop_vars([v for v in ("thermal_runaway", "hazard_level") if v in new])
    post = loaded.posterior(300, torch.Generator().manual_seed(1), real=unscored)
    assert post["theta"].shape == (5, 300, 3) and np.all(post["ess"].values > 30)


def test_encoder_matches_nuts_of_the_same_posterior(fitted, real):
    """Importance-corrected encoder vs NumPyro NUTS on the encoder's own target (prior × decoder likelihood with
    the learned discrepancy), per test and parameter in units of the NUTS sd."""
    from sim2real.reference import nuts_reference, posterior_distance

    fit, _ = fitted
    tests = real.isel(test=slice(0, 8))
    ref, diag = nuts_reference(fit, tests, draws=400, warmup=400, chains=2, seed=3)
    assert diag["divergences"] == 0 and diag["rhat_max"] < 1.05, diag
    enc = fit.posterior(2000, torch.Generator().manual_seed(4), real=tests)["u"].values
    d = posterior_distance(enc, ref)
    assert np.median(d["mean_shift"]) < 0.15 and np.median(d["w1"]) < 0.2, d
    assert 0.75 < np.median(d["sd_ratio"]) < 1.3, d
