"""The data-informed subspace: the decoder's expected Fisher information picks the directions that matter."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from risk.bayes.subspace import InformedSubspace, informed_subspace
from risk.predict.realcv import reliability


def _decoder(u, c):
    """A JAX 'decoder' in the `jax_apply` layout: observable 0 sees u0 + u1, observable 1 sees u1 only
    weakly, the runaway logit sees u0 − u1; u2 and u3 matter to nothing."""
    mean = jnp.stack([u[..., 0] + u[..., 1] + 0.1 * c[..., 0], 0.05 * u[..., 1]], axis=-1)
    return {"mean": mean, "log_scale": jnp.full(mean.shape, np.log(0.1)), "logit_runaway": 2.0 * (u[..., 0] - u[..., 1])}


def test_subspace_spans_the_informed_directions_and_round_trips():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((64, 4))
    cond = rng.uniform(size=(10, 1))
    with jax.enable_x64(True):
        sub = informed_subspace(_decoder, ["a", "b", "c", "d"], u, cond, np.ones((10, 2), bool), np.ones(10, bool),
                                anchor=np.zeros(4), max_dim=3)
    # u2, u3 carry no information: the kept directions lie in span(e0, e1), and there are two of them
    assert sub.dim == 2
    np.testing.assert_allclose(np.abs(sub.basis[2:]).max(), 0.0, atol=1e-8)
    assert sub.eigenvalues[2] < 1e-10 < sub.eigenvalues[1]
    # the projector removes exactly those directions; JSON round trip
    np.testing.assert_allclose(sub.complement @ sub.basis, 0.0, atol=1e-12)
    back = InformedSubspace.from_json(sub.to_json())
    np.testing.assert_allclose(back.basis, sub.basis)
    assert [r["direction"] for r in sub.table()] == ["d1", "d2"]


def test_subspace_without_outcomes_follows_the_observables_only():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        sub = informed_subspace(_decoder, ["a", "b", "c", "d"], rng.standard_normal((32, 4)), rng.uniform(size=(5, 1)),
                                np.array([[True, False]] * 5), np.zeros(5, bool), anchor=np.zeros(4), max_dim=3)
    # only observable 0 (u0 + u1) is observed: one direction, (1, 1, 0, 0)/√2
    assert sub.dim == 1
    np.testing.assert_allclose(np.abs(sub.basis[:, 0]), [2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-8)


def test_reliability_bins():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.1, 0.95, 0.9, 0.5, 0.45])
    rel = reliability(y, p, bins=5)
    assert sum(r["n"] for r in rel) == 6
    assert rel[0]["p_mean"] == pytest.approx(0.075) and rel[0]["freq"] == 0.0 and rel[-1]["freq"] == 1.0
