"""The hand-written likelihood terms of the physics model against scipy, with finite JAX gradients."""
from __future__ import annotations

import jax
import numpy as np
import pytensor.tensor as pt
from pymc.sampling.jax import get_jaxified_graph
from scipy import stats

from risk.bayes.model import _normal_logsf, _ordered_logistic_logp


def _jax_fn(build, n_in: int = 1):
    xs = [pt.dvector(f"x{k}") for k in range(n_in)]
    fn = get_jaxified_graph(inputs=xs, outputs=[build(*xs)])
    return lambda *a: fn(*a)[0]


def test_normal_logsf_matches_scipy_and_has_finite_gradients_everywhere():
    z = np.concatenate([np.linspace(-40, 60, 2001), [-5.9, 0.0, 20.0, 37.0]])
    with jax.enable_x64(True):
        f = _jax_fn(_normal_logsf)
        got = np.asarray(f(z))
        grad = np.asarray(jax.vmap(jax.grad(lambda v: f(v[None])[0]))(z))
    np.testing.assert_allclose(got, stats.norm.logsf(z), rtol=1e-6, atol=1e-12)
    assert np.isfinite(grad).all()
    # d/dz log P(Z > z) = −φ(z)/P(Z > z) (the inverse Mills ratio)
    np.testing.assert_allclose(grad, -np.exp(stats.norm.logpdf(z) - stats.norm.logsf(z)), rtol=1e-4, atol=1e-10)


def test_ordered_logistic_logp_matches_the_direct_formula_and_stays_finite():
    cut = np.array([-3.0, -2.0, -1.0, -0.5, 0.0, 1.5])
    levels = np.arange(7)
    for eta0 in (-60.0, -2.0, 0.3, 4.0, 60.0):
        eta = np.full(7, eta0)
        with jax.enable_x64(True):
            fn = get_jaxified_graph(inputs=[v := pt.lvector("v"), e := pt.dvector("e"), c := pt.dmatrix("c")],
                                    outputs=[_ordered_logistic_logp(v, e, c)])
            got = np.asarray(fn(levels, eta, np.tile(cut, (7, 1)))[0])
        cdf = np.concatenate([[0.0], stats.logistic.cdf(cut - eta0), [1.0]])
        direct = np.log(np.diff(cdf))
        ok = np.isfinite(direct)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got[ok], direct[ok], rtol=1e-6, atol=1e-8)
