"""The family covariate of the hierarchical model: family locations regress on log capacity along one
direction, so a family the model never saw is predicted at its own size (leave-family-out on a linear
model with a known answer), and the direction is the decoder's runaway-logit gradient."""
import numpy as np

from risk.bayes import CalibrationData, build_hierarchical_model, sample
from risk.bayes.physics import PhysicsSetup, _covariate_spec, runaway_direction
from risk.bayes.subspace import InformedSubspace
from risk.predict.scenarios import family_slope_draws, population_shift
from risk.bayes.sampling import stack_draws

from tests.risk.bayes.linear_test_model import A, NOISE, linear_surrogate

CAPACITY_AH = {"f025": 0.25, "f05": 0.5, "f1": 1.0, "f2": 2.0, "f3": 3.0, "f5": 5.0, "f8": 8.0, "f16": 16.0}
SLOPE = np.array([0.8, -0.4])  # true u per e-fold of capacity
DIRECTION = SLOPE / np.linalg.norm(SLOPE)
CENTRE = np.mean(np.log(list(CAPACITY_AH.values())))


def _true_location(capacity_ah: float) -> np.ndarray:
    return SLOPE * (np.log(capacity_ah) - CENTRE)


def _data(rng, families):
    scatter = {f: 0.1 * rng.standard_normal(2) for f in families}  # family effects off the line
    fam = np.repeat(families, 6)
    cap = np.array([CAPACITY_AH[f] for f in fam]) * 3600.0  # A s
    # the linear surrogate reads column 0 (zero here); column 1 is the capacity the covariate reads
    c = np.column_stack([np.zeros(fam.size), cap])
    u = (np.stack([_true_location(k / 3600.0) + scatter[f] for f, k in zip(fam, cap)])
         + 0.1 * rng.standard_normal((fam.size, 2)))
    y = u @ A.T + NOISE * rng.standard_normal((fam.size, 3))
    return CalibrationData(test=np.arange(fam.size), family=fam, conditions=c, observables=y,
                           condition_names=("dummy", "capacity_nominal"))


def test_covariate_spec_centres_on_the_families_log_capacity():
    data = _data(np.random.default_rng(0), list(CAPACITY_AH))
    spec = _covariate_spec(data)
    assert spec["index"] == 1 and spec["condition"] == "capacity_nominal"
    np.testing.assert_allclose(spec["centre"], np.mean(np.log(np.array(list(CAPACITY_AH.values())) * 3600.0)))
    setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)), spec)
    x = setup.family_covariate(data)
    np.testing.assert_allclose(x, np.log([CAPACITY_AH[f] * 3600.0 for f in data.families]) - spec["centre"])
    assert _covariate_spec(data.subset(np.arange(6))) is None  # one family: nothing to regress on


def test_unseen_family_is_predicted_at_its_size():
    rng = np.random.default_rng(3)
    seen = [f for f in CAPACITY_AH if f != "f8"]
    data = _data(rng, seen)
    setup = PhysicsSetup(np.zeros(2), np.ones(2), InformedSubspace.full(("k1", "k2"), np.zeros(2)),
                         _covariate_spec(data, DIRECTION))
    model = build_hierarchical_model(data, linear_surrogate, parameter_names=["k1", "k2"], prior_mean=np.zeros(2),
                                     prior_sd=np.ones(2), family_covariate=setup.family_covariate(data),
                                     covariate_direction=setup.covariate["direction"])
    tree, diag = sample(model, seed=5, draws=1000, tune=1000, target_accept=0.99, attrs=setup.attrs(), posterior_predictive=False)
    assert diag.ok, diag.messages  # the gate of the shipped studies
    slope = family_slope_draws(tree)
    lo, hi = np.quantile(slope, [0.02, 0.98], axis=0)
    assert np.all((lo < SLOPE) & (SLOPE < hi)), (lo, hi)
    # a new 8 A h family: the population at its size, against the population mean (the model without covariate)
    cond = np.array([[0.0, 8.0 * 3600.0]])
    mu_pop = stack_draws(tree, "mu_pop")
    at_size = (mu_pop + population_shift(tree, slope, cond)[:, 0]).mean(0)
    truth = _true_location(8.0)
    assert np.abs(at_size - truth).max() < 0.35, (at_size, truth)
    assert np.abs(mu_pop.mean(0) - truth).max() > 0.5  # what a location-only population would say


def test_runaway_direction_is_the_logit_gradient():
    import jax.numpy as jnp

    # the linear test model's runaway logit is 2 u_0 + 3 c − 1: its gradient in u is (1, 0)
    def jax_apply(u, c):
        return {"logit_runaway": 2.0 * u[:, 0] + 3.0 * c[:, 0] - 1.0}

    basis = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    sub = InformedSubspace(("k1", "k2"), basis, np.zeros(2), np.ones(2), 0)
    d = runaway_direction(jax_apply, sub, np.zeros((4, 1)))
    np.testing.assert_allclose(basis @ d, [1.0, 0.0], atol=1e-6)
