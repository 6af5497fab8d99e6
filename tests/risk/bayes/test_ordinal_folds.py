"""Batched cross-validation copies of the ordinal model: exact log-density bookkeeping (no sampling)."""
import numpy as np

from risk.bayes.baselines import build_ordinal_model


def _inputs(seed=0, n=14):
    rng = np.random.default_rng(seed)
    fam = rng.integers(0, 3, n)
    soc = rng.uniform(0, 1, n)
    level = rng.integers(1, 8, n).astype(float)
    level[[2, 9]] = np.nan  # tests without a level carry no outcome
    return fam, soc, np.array([-0.3, 0.1, 0.2]), level


def _point(model, rng, batch=None):
    """A random point in the unconstrained space; with ``batch`` the copies share ``batch``'s values."""
    point = {}
    for v in model.value_vars:
        shape = model.initial_point()[v.name].shape
        if batch is not None:
            point[v.name] = np.broadcast_to(batch[v.name], shape).copy()
        else:
            point[v.name] = rng.normal(0.0, 0.5, shape)
    return point


def test_identical_copies_double_the_log_density():
    fam, soc, logcap, level = _inputs()
    single = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level)
    double = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level, train_mask=np.ones((2, soc.size), bool))
    p1 = _point(single, np.random.default_rng(1))
    lp1 = single.compile_logp()(p1)
    lp2 = double.compile_logp()(_point(double, None, batch=p1))
    np.testing.assert_allclose(lp2, 2 * lp1, rtol=1e-10)


def test_hidden_outcome_is_what_a_fit_without_it_sees():
    fam, soc, logcap, level = _inputs()
    hide = 5  # a test with a level
    mask = np.ones((2, soc.size), bool)
    mask[1, hide] = False  # copy 1 never sees test 5's outcome
    batched = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level, train_mask=mask)
    single = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level)
    without = build_ordinal_model(fam, 3, soc, logcap, hazard_level=np.where(np.arange(soc.size) == hide, np.nan, level))
    p1 = _point(single, np.random.default_rng(2))
    lp = batched.compile_logp()(_point(batched, None, batch=p1))
    lp_single, lp_without = single.compile_logp()(p1), without.compile_logp()(p1)
    assert lp_single != lp_without
    np.testing.assert_allclose(lp, lp_single + lp_without, rtol=1e-10)
