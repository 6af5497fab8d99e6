"""Cross-validation folds of the metadata models (ordinal regression, heat model) as per-test weights: exact
log-density bookkeeping (no sampling)."""
import numpy as np
import pymc as pm

from risk.bayes.baselines import build_ordinal_model


def _inputs(seed=0, n=14):
    rng = np.random.default_rng(seed)
    fam = rng.integers(0, 3, n)
    soc = rng.uniform(0, 1, n)
    level = rng.integers(1, 8, n).astype(float)
    level[[2, 9]] = np.nan  # tests without a level carry no outcome
    return fam, soc, np.array([-0.3, 0.1, 0.2]), level


def _point(model, rng):
    return {v.name: rng.normal(0.0, 0.5, model.initial_point()[v.name].shape) for v in model.value_vars}


def test_unit_weights_are_the_plain_model():
    fam, soc, logcap, level = _inputs()
    plain = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level)
    weighted = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level, weighted=True)
    p = _point(plain, np.random.default_rng(1))
    np.testing.assert_allclose(weighted.compile_logp()(p), plain.compile_logp()(p), rtol=1e-10)


def test_a_zero_weight_hides_exactly_that_outcome():
    fam, soc, logcap, level = _inputs()
    hide = 5  # a test with a level
    weighted = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level, weighted=True)
    without = build_ordinal_model(fam, 3, soc, logcap, hazard_level=np.where(np.arange(soc.size) == hide, np.nan, level))
    with_it = build_ordinal_model(fam, 3, soc, logcap, hazard_level=level)
    p = _point(without, np.random.default_rng(2))
    w = np.ones(soc.size)
    w[hide] = 0.0
    pm.set_data({"test_weight": w}, model=weighted)
    lp = weighted.compile_logp()(p)
    assert lp != with_it.compile_logp()(p)
    np.testing.assert_allclose(lp, without.compile_logp()(p), rtol=1e-10)


def _heat_inputs(seed=0, n=12):
    from risk.bayes.baselines import build_heat_model

    rng = np.random.default_rng(seed)
    args = dict(type_index=rng.integers(0, 3, n), n_types=3, soc=rng.uniform(0, 1, n), trigger_index=rng.integers(0, 2, n),
                n_triggers=2, log_energy_type=np.array([-0.2, 0.0, 0.2]))
    heat = rng.uniform(20, 80, n)
    heat[3] = np.nan
    rupture = (rng.uniform(size=n) < 0.3).astype(float)
    return build_heat_model, args, heat, rupture


def test_heat_model_weights_hide_exactly_the_zero_weight_tests():
    build, args, heat, rupture = _heat_inputs()
    plain = build(**args, heat_kj=heat, bottom_rupture=rupture)
    weighted = build(**args, heat_kj=heat, bottom_rupture=rupture, weighted=True)
    p = _point(plain, np.random.default_rng(4))
    np.testing.assert_allclose(weighted.compile_logp()(p), plain.compile_logp()(p), rtol=1e-10)
    hide = np.isin(np.arange(heat.size), [1, 6])
    without = build(**args, heat_kj=np.where(hide, np.nan, heat), bottom_rupture=np.where(hide, np.nan, rupture))
    pm.set_data({"test_weight": (~hide).astype(float)}, model=weighted)
    np.testing.assert_allclose(weighted.compile_logp()(p), without.compile_logp()(p), rtol=1e-10)


def test_the_weighted_ordinal_model_is_compiled_once_per_table_and_settings():
    """`_weighted_ordinal`: the same table and sampler settings reuse one `WeightedFits` (the CV's schemes); another
    table (the ablation) or other settings get their own; the two most recently used are kept."""
    from risk.bayes.baselines import _WEIGHTED_ORDINAL, _weighted_ordinal

    _WEIGHTED_ORDINAL.clear()
    fam, soc, logcap, level = _inputs()
    kw = {"draws": 10, "tune": 10, "chains": 4, "target_accept": 0.9}
    a = _weighted_ordinal((fam, 3, soc, logcap), level, **kw)
    assert _weighted_ordinal((fam, 3, soc.copy(), logcap), level.copy(), **kw) is a
    b = _weighted_ordinal((fam, 3, np.full_like(soc, 0.5), logcap), level, **kw)  # the ablation's constant SOC
    assert b is not a and _weighted_ordinal((fam, 3, soc, logcap), level, **kw) is a
    assert _weighted_ordinal((fam, 3, soc, logcap), level, **(kw | {"draws": 20})) is not a
    assert len(_WEIGHTED_ORDINAL) == 2 and b not in _WEIGHTED_ORDINAL.values()
