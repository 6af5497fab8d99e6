"""Grouped cross-validation on the REAL indentation tests: the metadata model beats the baseline."""
from __future__ import annotations

import json

import numpy as np

from risk.predict.realcv import crossvalidate_real, write_crossval


def test_indentation_model_beats_family_frequency_baseline_leaving_out_replicates(shared_data, tmp_path):
    cv = crossvalidate_real(shared_data / "indentation" / "tests.csv", seed=3, draws=150, tune=150,
                            schemes=("leave_replicates_out",))
    entry = cv["leave_replicates_out"]
    assert entry["n_folds"] == 3 and entry["n_tests"] >= 90
    model, base = entry["model"], entry["baseline"]
    # measured with 300 draws: log loss 0.20 vs 0.39, Brier 0.065 vs 0.124
    assert model["log_loss"] < base["log_loss"] - 0.05, cv
    assert model["brier"] < base["brier"] - 0.02, cv
    write_crossval(cv, tmp_path / "crossval.json")
    assert json.loads((tmp_path / "crossval.json").read_text()) == cv


def test_scores_per_family_add_up_to_the_overall_log_loss():
    import numpy as np
    import pandas as pd

    from risk.predict.crossval import log_loss
    from risk.predict.realcv import _scores

    res = pd.DataFrame({"family": ["A", "A", "B", "B", "B"], "tr": [1, 0, 0, 0, 1],
                        "pred_p": [0.9, 0.2, 0.1, 0.3, 0.4]})
    out = _scores(res)
    fam = out["by_family"]
    assert {f: r["n"] for f, r in fam.items()} == {"A": 2, "B": 3}
    np.testing.assert_allclose(fam["A"]["log_loss"], -(np.log(0.9) + np.log(0.8)) / 2)
    np.testing.assert_allclose((2 * fam["A"]["log_loss"] + 3 * fam["B"]["log_loss"]) / 5, out["log_loss"])
    assert out["log_loss"] == log_loss(res["tr"], res["pred_p"])


def test_a_fold_whose_chains_did_not_mix_is_resumed_then_refitted_at_a_new_seed(monkeypatch):
    """The refit policy: R-hat above FOLD_REFIT_RHAT → resumed from its own draws (a second warm-up), then a new
    seed; the best of FOLD_ATTEMPTS fits is kept and every refit is named in its diagnostics."""
    from types import SimpleNamespace

    from risk.bayes.diagnostics import Diagnostics
    from risk.predict import realcv

    rhats = {0: 1.54, 7919: 1.02}
    calls = []

    class Tree(str):  # a named stand-in for a fold's posterior, with the attrs the fold's wall time goes to
        attrs: dict

    class Fitter:  # the sampler's outcome per seed; the policy is under test
        def fit(self, weight, *, seed, keep, attrs, resume):
            calls.append((seed, resume))
            assert keep["test"].tolist() == [False, True, True] and keep["family"].tolist() == [False, True]
            tree = Tree(f"tree{seed}")
            tree.attrs = {}
            return tree, Diagnostics(ok=False, rhat_max=rhats.get(seed, 1.3), ess_bulk_min=300.0,
                                     ess_tail_min=300.0, divergences=0, bfmi_min=1.0, messages=["m"])

    setup = SimpleNamespace(attrs=dict)
    monkeypatch.setattr(realcv, "_fitter", lambda *a: (Fitter(), setup))
    data = SimpleNamespace(test=np.arange(3), family=np.array(["a", "b", "b"]), families=("a", "b"))
    tree, diag = realcv._fit_fold("k", "x", data, setup, np.array([1, 2]), 0, {})
    assert calls == [(0, False), (7919, True)] and tree == "tree7919" and diag.rhat_max == 1.02
    assert realcv._diag(diag, tree)["seconds"] >= 0.0  # the fold's wall time over both fits reaches crossval.json
    assert diag.messages[0].startswith("resumed from its draws") and "R-hat 1.540" in diag.messages[0]
    assert diag.messages[-1] == "m"
    calls.clear()
    rhats.clear()  # every attempt stuck: three fits (ADVI, resumed, new seed), the best (lowest R-hat) kept
    rhats.update({0: 1.5, 7919: 1.2, 15838: 1.4})
    tree, diag = realcv._fit_fold("k", "x", data, setup, np.array([1, 2]), 0, {})
    assert calls == [(0, False), (7919, True), (15838, False)] and tree == "tree7919"
    assert diag.messages[1].startswith("refitted at a new seed after R-hat 1.200") and len(diag.messages) == 3


def test_a_left_out_family_leaves_with_its_unlabelled_tests():
    """Leave-family-out: the fold's fit sees no test of the held-out family (labelled or not); other schemes
    keep every test that is not held out."""
    import numpy as np

    from risk.predict.realcv import training_rows

    family = np.array(["A", "A", "A", "B", "B", "C"])  # rows 2 (A) and 5 (C) have no hazard level
    held = np.array([0, 1])  # the labelled tests of family A
    np.testing.assert_array_equal(training_rows(6, held, family, whole_families=True), [3, 4, 5])
    np.testing.assert_array_equal(training_rows(6, held, family, whole_families=False), [2, 3, 4, 5])


def test_folds_take_the_calibrated_centring_when_its_directions_match():
    import numpy as np

    from risk.bayes.physics import PhysicsSetup
    from risk.bayes.subspace import InformedSubspace
    from risk.predict.realcv import fold_setup

    basis = np.eye(4)[:, :3]
    sub = InformedSubspace(parameter_names=("a", "b", "c", "d"), basis=basis, anchor=np.zeros(4),
                           eigenvalues=np.ones(4), n_tests=10)
    setup = PhysicsSetup(np.zeros(4), np.ones(4), sub)
    assert fold_setup(setup, (True, False, True)).centred == (True, False, True)
    per_family = {"f1": [True, False, True], "f2": [False, False, False]}
    assert fold_setup(setup, per_family).centred == {"f1": (True, False, True), "f2": (False, False, False)}
    assert fold_setup(setup, {"f1": [True, False]}) is setup  # another subspace
    assert fold_setup(setup, None) is setup  # no calibrated posterior: each fold decides
    assert fold_setup(setup, (True, True)) is setup  # another subspace: its centring does not apply


def test_calorimetry_metadata_folds_fit_the_databank_with_one_compiled_model(shared_data):
    """The heat model's folds (weights of one compiled model) on the real databank: its 90 % heat intervals cover
    held-out replicates about as often as they should, and its bottom-rupture probability is no worse than the cell
    type's training frequency."""
    cv = crossvalidate_real(shared_data / "bfd" / "BatteryFailureDatabankV2_train.xlsx", seed=3, draws=150, tune=150,
                            schemes=("leave_replicates_out",))
    entry = cv["leave_replicates_out"]
    assert entry["n_folds"] == 3 and entry["n_tests"] >= 50
    assert 0.75 <= entry["model"]["coverage_90"] <= 1.0, entry
    assert entry["model"]["log_loss"] <= entry["baseline"]["log_loss"] + 0.02, entry
