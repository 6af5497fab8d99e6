"""Stage caching: a rerun of an unchanged study redoes no stage; a change redoes what depends on it."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from risk.cli import app
from simulators.ensemble import open_ensemble

STUDY = Path(__file__).parent / "studies" / "good.yaml"
runner = CliRunner()


def _records(out: Path) -> dict:
    return json.loads((out / "stages.json").read_text())


def test_rerun_of_unchanged_study_redoes_no_stage(tmp_path):
    out = tmp_path / "run"
    first = runner.invoke(app, ["run", str(STUDY), "--out", str(out), "--quick"])
    assert first.exit_code == 0, first.output
    rec1 = _records(out)
    assert rec1["simulate"]["summary"]["computed_now"] == 4
    ens = open_ensemble(out / "ensemble.zarr")
    assert ens.sizes["sample"] == 4 and ens["temperature"].attrs["units"] == "K"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["study_hash"] and prov["packages"]["xarray"] and prov["seed"] == 7

    second = runner.invoke(app, ["run", str(STUDY), "--out", str(out), "--quick"])
    assert second.exit_code == 0, second.output
    assert "unchanged, skipped" in second.output
    assert _records(out) == rec1  # same hashes, same finish times: nothing redone

    # a stage rerun on its own (forced) makes its dependants rerun on the next `run`, nothing else
    assert runner.invoke(app, ["predict", str(STUDY), "--out", str(out), "--quick", "--force"]).exit_code == 0
    before = _records(out)
    assert before["predict"]["output"] != rec1["predict"]["output"]
    again = runner.invoke(app, ["run", str(STUDY), "--out", str(out), "--quick"])
    assert again.exit_code == 0, again.output
    after = _records(out)
    assert {k for k in after if after[k] != before[k]} == {"report", "export"}

    forced = runner.invoke(app, ["simulate", str(STUDY), "--out", str(out), "--quick", "--force"])
    assert forced.exit_code == 0, forced.output
    # --force reruns the stage, but finished simulations in the store are still not redone
    assert _records(out)["simulate"]["summary"]["computed_now"] == 0


def test_a_stage_command_runs_what_it_depends_on_first(tmp_path):
    """`risk train` in an empty run directory simulates and ingests first (nothing downstream); run again
    with --force it retrains and leaves its current upstream stages alone."""
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", str(STUDY), "--out", str(out), "--quick"])
    assert res.exit_code == 0, res.output
    rec = _records(out)
    assert set(rec) == {"simulate", "ingest", "train"} and (out / "model" / "model.json").exists()
    again = runner.invoke(app, ["train", str(STUDY), "--out", str(out), "--quick", "--force"])
    assert again.exit_code == 0, again.output
    after = _records(out)
    assert after["simulate"] == rec["simulate"] and after["ingest"] == rec["ingest"]
    assert after["train"]["output"] != rec["train"]["output"]


def test_changed_section_invalidates_dependent_stage(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(STUDY), "--out", str(out), "--quick"]).exit_code == 0
    h1 = _records(out)["simulate"]["hash"]
    changed = tmp_path / "s.yaml"
    changed.write_text(STUDY.read_text().replace("high: 30.0", "high: 31.0"))
    res = runner.invoke(app, ["simulate", str(changed), "--out", str(tmp_path / "run2"), "--quick"])
    assert res.exit_code == 0, res.output
    assert _records(tmp_path / "run2")["simulate"]["hash"] != h1


def test_failed_diagnostics_exit_3_after_the_report_unless_allowed(tmp_path):
    """`risk run` keeps going to the report, then exits 3 from diagnostics.json (also when cached)."""
    import typer
    from types import SimpleNamespace

    from risk.cli import _exit_on_bad_diagnostics

    def ctx(allow):
        return SimpleNamespace(out=tmp_path, study=SimpleNamespace(inference=SimpleNamespace(allow_bad_diagnostics=allow)))

    _exit_on_bad_diagnostics(ctx(False))  # no posterior: nothing to judge
    (tmp_path / "diagnostics.json").write_text(json.dumps({"ok": False, "messages": ["R-hat max 1.2 > 1.01"]}))
    try:
        _exit_on_bad_diagnostics(ctx(False))
        raise AssertionError("expected exit 3")
    except typer.Exit as e:
        assert e.exit_code == 3
    _exit_on_bad_diagnostics(ctx(True))
    (tmp_path / "diagnostics.json").write_text(json.dumps({"ok": True, "messages": []}))
    _exit_on_bad_diagnostics(ctx(False))
