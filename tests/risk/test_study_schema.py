"""Study schema: valid files pass, every malformed study fails with exit 2 naming file, line and field."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.errors import StudyError
from risk.study import json_schema, load_study

HERE = Path(__file__).parent
BAD = sorted((HERE / "studies" / "bad").glob("*.yaml"))
runner = CliRunner()


def expected_fragment(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_good_study_loads_in_si():
    s = load_study(HERE / "studies" / "good.yaml")
    assert s.study.name == "tiny-cooling"
    assert s.cell.capacity_si == pytest.approx(7200.0)          # 2 A h = 7200 A s
    assert s.condition_values()["temperature_ambient"] == pytest.approx(298.15)
    assert s.condition_values()["power"] == (2.0, 8.0)
    assert s.priors()["h"].support == (5.0, 30.0)


def test_quick_overrides_apply():
    assert load_study(HERE / "studies" / "good.yaml", quick=True).ensemble.size == 4
    assert load_study(HERE / "studies" / "good.yaml").ensemble.size == 8


def test_prior_units_are_converted_to_the_simulators_unit(tmp_path):
    text = (HERE / "studies" / "good.yaml").read_text().replace(
        "prior: {dist: loguniform, low: 20.0, high: 80.0}\n    unit: J/K",
        "prior: {dist: uniform, low: 0.02, high: 0.08}\n    unit: kJ/K")
    p = tmp_path / "s.yaml"
    p.write_text(text)
    lo, hi = load_study(p).priors()["heat_capacity"].support
    assert (lo, hi) == (pytest.approx(20.0), pytest.approx(80.0))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_study_exit_2_names_file_line_and_field(path):
    assert len(BAD) >= 12
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    msg = " ".join(res.output.split())
    assert expected_fragment(path) in msg, msg
    assert re.search(rf"{re.escape(path.name)}:\d+", msg), f"no file:line in {msg!r}"
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name, marker, field", [
    ("wrong_type", "size: eight", "ensemble.size"),
    ("unknown_key", "sed: 7", "study.sed"),
    ("inverted_bounds", "low: 30.0, high: 5.0", "parameters.h.prior"),
    ("unknown_parameter", "heat_capacty:", "parameters.heat_capacty"),
    ("unknown_section", "ensembel:", "ensembel"),
])
def test_line_numbers_point_at_the_offending_line(name, marker, field):
    path = HERE / "studies" / "bad" / f"{name}.yaml"
    with pytest.raises(StudyError) as info:
        load_study(path)
    lines = path.read_text().splitlines()
    expected = next(i + 1 for i, text in enumerate(lines) if marker in text and not text.startswith("#"))
    assert info.value.line in (expected, expected - 1), str(info.value)  # the key's line or its parent's
    assert info.value.field == field


def test_missing_file_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml" in res.output and "not found" in res.output


def test_shipped_json_schema_is_current(repo):
    shipped = json.loads((repo / "risk" / "schema" / "study.schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), "run `make schema` and commit"
    assert {"study", "cell", "simulator", "parameters", "ensemble", "data", "scenarios"} <= set(shipped["properties"])


def _default_study_with(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped default study with one text replaced, its data path made absolute."""
    repo = HERE.parents[1]
    text = (repo / "studies" / "indentation_pouch.yaml").read_text()
    assert old in text
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(old, new).replace("path: ../../shared", f"path: {repo.parent / 'shared'}"))
    return p


@pytest.mark.parametrize("geometry, conditions, problem", [
    ("{thickness: 8 mm}", "", "is not what is simulated (0.005 m, the default"),
    ("{thickness: 5 mm, width: 40 mm}", "", "simulates no 'cell_width'"),
    ("{thickness: 8 mm}", "  cell_thickness: {low: 3 mm, high: 6 mm}\n", "lies outside conditions.cell_thickness"),
    ("{thickness: 8 mm}", "  cell_thickness: 7 mm\n", "(0.007 m, conditions.cell_thickness)"),
])
def test_a_cell_dimension_the_simulator_does_not_simulate_is_an_error_at_its_line(tmp_path, geometry, conditions,
                                                                                  problem):
    """``cell.geometry`` names what the simulator's ``cell_<key>`` condition simulates; anything else would be ignored."""
    p = _default_study_with(tmp_path, "geometry: {thickness: 5 mm}", f"geometry: {geometry}")
    if conditions:
        p.write_text(p.read_text().replace("  capacity_nominal: {low: 0.4 A h, high: 7 A h}\n",
                                           "  capacity_nominal: {low: 0.4 A h, high: 7 A h}\n" + conditions, 1))
    with pytest.raises(StudyError) as info:
        load_study(p)
    assert problem in str(info.value)
    assert info.value.field.startswith("cell.geometry.") and info.value.line == 16


def test_a_cell_dimension_set_as_the_simulated_condition_loads(tmp_path):
    p = _default_study_with(tmp_path, "geometry: {thickness: 5 mm}", "geometry: {thickness: 8 mm}")
    p.write_text(p.read_text().replace("  capacity_nominal: {low: 0.4 A h, high: 7 A h}\n",
                                       "  capacity_nominal: {low: 0.4 A h, high: 7 A h}\n  cell_thickness: 8 mm\n", 1))
    assert load_study(p).condition_values()["cell_thickness"] == pytest.approx(8e-3)


def test_a_reference_without_a_map_onto_it_is_an_error_at_its_line(tmp_path):
    """``reference:`` names the higher-fidelity simulator the study's simulator reduces; a pair with no map of inputs
    (`risk.fidelity.REDUCTIONS`) is refused at its line, naming the known pairs."""
    repo = HERE.parents[1]
    text = (repo / "studies" / "oven_18650.yaml").read_text()
    old = "reference: {simulator: fe_thermal_18650,"
    assert old in text and load_study(repo / "studies" / "oven_18650.yaml").reference.runs >= 30
    p = tmp_path / "oven.yaml"
    p.write_text(text.replace(old, "reference: {simulator: fe_thermal_pouch,"))
    with pytest.raises(StudyError) as info:
        load_study(p)
    assert "no map of 'lumped_thermal' onto 'fe_thermal_pouch'" in str(info.value)
    assert "lumped_thermal → fe_thermal_18650" in str(info.value)
    assert info.value.field == "reference.simulator"
    assert info.value.line == text[:text.index(old)].count("\n") + 1


def test_the_default_studys_reference_must_be_the_chain_on_the_fe_hot_spot(tmp_path):
    """Without ``thermal: fe`` the reference would be the study's own chain: refused at ``reference.options``."""
    p = _default_study_with(tmp_path, "options: {thermal: fe}, runs: 32", "options: {}, runs: 32")
    with pytest.raises(StudyError) as info:
        load_study(p)
    assert info.value.field == "reference.options" and "with thermal: fe" in str(info.value)


def test_a_convergence_check_of_a_mesh_free_simulator_is_an_error_at_its_line(tmp_path):
    """``convergence:`` refines the simulator's discretisation (`risk.convergence`); the lumped oven model has none:
    refused at the section's line, naming the simulator."""
    repo = HERE.parents[1]
    assert load_study(repo / "studies" / "indentation_pouch.yaml").convergence.runs >= 6
    text = (repo / "studies" / "oven_18650.yaml").read_text()
    old = "reference: {simulator: fe_thermal_18650,"
    p = tmp_path / "oven.yaml"
    text = text.replace("convergence: {runs: 8, model: reference}\n", "")
    p.write_text(text.replace(old, "convergence: {runs: 4}\n" + old))
    with pytest.raises(StudyError) as info:
        load_study(p)
    assert "'lumped_thermal' has no discretisation to refine" in str(info.value)
    assert "model: reference checks the FE reference" in str(info.value)
    assert info.value.field == "convergence" and info.value.line == text[:text.index(old)].count("\n") + 1
    # its FE reference has one; without a reference section there is none to check
    assert load_study(repo / "studies" / "oven_18650.yaml").convergence.model == "reference"
    p.write_text(text.replace(old, "convergence: {runs: 4, model: reference}\n#" + old))
    with pytest.raises(StudyError) as info:
        load_study(p)
    assert info.value.field == "convergence.model" and "needs the study's reference" in str(info.value)
