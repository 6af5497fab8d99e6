"""P(TR | scenario): new-cell predictive, law of total variance, unseen families, "1 in N"."""
import numpy as np
import xarray as xr

from risk.predict.scenarios import Scenario, decompose, new_cell_p_tr, one_in_n, write_predictions


def _posterior(S=400, seed=0):
    rng = np.random.default_rng(seed)
    mu_pop = rng.normal([0.0, 0.0], 0.1, (S, 2))
    tau = np.full((S, 2), 0.8)
    mu_f = np.stack([mu_pop + [1.0, 0.0], mu_pop + [-1.0, 0.0]], axis=1)
    chol = np.broadcast_to(np.diag([0.5, 0.5]), (S, 2, 2)).copy()

    def da(x, dims):
        return xr.DataArray(x.reshape((4, S // 4) + x.shape[1:]), dims=("chain", "draw") + dims)

    post = xr.Dataset({"mu_pop": da(mu_pop, ("parameter",)), "tau_family": da(tau, ("parameter",)),
                       "mu_family": da(mu_f, ("family", "parameter")),
                       "cell_chol": da(chol, ("parameter", "parameter_"))},
                      coords={"family": ["hot", "cold"], "parameter": ["k1", "k2"]})
    return xr.DataTree.from_dict({"posterior": post})


def logit_fn(u, c):
    return 2.0 * u[..., 0] + 3.0 * c[..., 0] - 2.0


SCEN = [Scenario("hot-soc1", "hot", 1.0, "indent", (1.0,)), Scenario("cold-soc0", "cold", 0.0, "indent", (0.0,)),
        Scenario("new-soc1", "unseen", 1.0, "indent", (1.0,))]


def test_decomposition_is_law_of_total_variance(tmp_path):
    p = new_cell_p_tr(_posterior(), logit_fn, SCEN, n_cells=300, seed=1)
    assert p.shape == (3, 400, 300)
    ds = decompose(p, SCEN, study_hash="abc")
    total = p.reshape(3, -1).var(axis=1)
    np.testing.assert_allclose(ds["p_tr_var_aleatory"] + ds["p_tr_var_epistemic"], total, rtol=1e-10)
    assert ds["p_tr_mean"].sel(scenario="hot-soc1") > 0.8 > 0.05 > ds["p_tr_mean"].sel(scenario="cold-soc0")
    assert np.all(ds["p_tr_q05"] <= ds["p_tr_q50"]) and np.all(ds["p_tr_q50"] <= ds["p_tr_q95"])
    # unseen family: population over families → more epistemic spread than a known family
    assert ds["p_tr_var_epistemic"].sel(scenario="new-soc1") > 5 * ds["p_tr_var_epistemic"].sel(scenario="hot-soc1")
    # the known-family answer: E sigmoid(2(1 + 0.5 z) + 1) with tiny posterior spread
    z = np.random.default_rng(2).standard_normal(200_000)
    ref = np.mean(1 / (1 + np.exp(-(2 * (1 + 0.5 * z) + 1))))
    assert abs(float(ds["p_tr_mean"].sel(scenario="hot-soc1")) - ref) < 0.01
    write_predictions(ds, tmp_path / "predictions.nc")
    back = xr.open_dataset(tmp_path / "predictions.nc", engine="h5netcdf")
    assert back["p_tr_draws"].dims == ("scenario", "draw") and back.attrs["study_hash"] == "abc"
    back.close()


def test_one_in_n():
    assert one_in_n(0.0012) == "1 in 830"
    assert one_in_n(1e-8) == "1 in 1.0e+08"
    assert one_in_n(0.0).startswith("<")


def test_sim_to_real_link_is_applied_per_draw():
    tree = _posterior()
    post = tree["posterior"].to_dataset()
    S = 400
    shift = np.linspace(-1.0, 1.0, S).reshape(4, S // 4)  # a different link in every draw
    scale = np.full((4, S // 4), 0.5)
    linked = xr.DataTree.from_dict({"posterior": post.assign(link_shift=(("chain", "draw"), shift),
                                                             link_scale=(("chain", "draw"), scale))})
    hot = SCEN[:1]
    p_id = new_cell_p_tr(tree, logit_fn, hot, n_cells=50, seed=3)
    p_link = new_cell_p_tr(linked, logit_fn, hot, n_cells=50, seed=3)  # same cells: same seed
    logit_id = np.log(p_id / (1 - p_id))
    np.testing.assert_allclose(np.log(p_link / (1 - p_link)), shift.reshape(-1)[None, :, None] + 0.5 * logit_id,
                               rtol=1e-6, atol=1e-6)
