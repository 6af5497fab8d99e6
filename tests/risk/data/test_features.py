"""Features: short onsets checked by eye on the QA plots; censoring; combined dataset round-trips."""
import json

import numpy as np
import pytest

from risk.data.features import detect_short_onset, indentation_features

# Onset [s] read by eye on the QA plots (risk.data.qa.plot_test / zoom_onset): the time at which the
# voltage leaves its pre-test level for good (start of the sag/collapse). Tolerance 1.5 s.
ONSETS_BY_EYE = {
    "500mAh1-20S0C": 127.0, "500mAh2-40S0C": 118.0, "500mAh3-60S0C": 93.0, "1500mAh1-40S0C": 141.0,
    "1500mAh2-20S0C": 127.0, "1500mAh3-100S0C": 135.7, "2000mAh1-60S0C": 138.8, "2000mAh2-40S0C": 157.7,
    "2000mAh2-100S0C": 150.3, "LCO-LP-6400mAh-100SOC-cell1": 199.3, "LCO-LP6400mAh-80SOC-cell4": 154.9,
    "OE-LCO-6270mAh-40SOC": 166.4, "OE-LCO-6560mAh-0SOC": 160.0,
}


@pytest.mark.parametrize("test,expected", sorted(ONSETS_BY_EYE.items()))
def test_onset_matches_eye(tests_by_name, test, expected):
    f = indentation_features(tests_by_name[test])
    assert f["short_detected"]
    assert abs(f["time_short_onset"] - expected) <= 1.5
    assert f["force_short_onset"] > 1000  # N, the cells short near the peak force


def test_every_lco_pouch_test_shorts(combined):
    lco = combined.where(combined.cell_family.str.startswith("LCO"), drop=True)
    assert lco.sizes["test"] == 43 and bool(lco.short_detected.all())


def test_no_short_on_scc_cells(combined):
    scc = combined.where(combined.cell_family == "Soteria SCC", drop=True)
    assert scc.sizes["test"] == 10
    assert not bool(scc.short_detected.astype(bool).any())
    assert float(scc.voltage_drop.max()) < 0.05


def test_voltage_drop_window_separates_large_cell_runaways(combined):
    """The 60-s voltage drop (simulators.features.VOLTAGE_WINDOW) of the ORNL NMC 10 A h and LCO 6.4 A h cells above
    SOC 0.1: every runaway (level >= 6) drops more than 3.4 V, every local reaction (levels 3-4) less than 1.4 V —
    over their whole records (66-430 s) the same drops, over a simulated 30 min every cell had drained."""
    big = combined.where(combined.cell_family.isin(["NMC 10 Ah", "LCO 6.4 Ah"]) & (combined.soc > 0.1)
                         & np.isfinite(combined.hazard_level), drop=True)
    level, drop = big.hazard_level.values, big.voltage_drop.values
    assert (level >= 6).sum() == 11 and (level < 6).sum() == 11
    assert drop[level >= 6].min() > 3.4 and drop[level < 6].max() < 1.4


def test_voltage_drop_looks_only_at_the_window():
    from simulators.features import VOLTAGE_WINDOW, voltage_drop

    t = np.linspace(-10.0, 300.0, 3101)
    v = np.where(t < 0, 4.0, 3.5) - np.where(t > 100.0, 3.0, 0.0)  # a partial short, then a collapse after 100 s
    assert VOLTAGE_WINDOW == 60.0
    assert voltage_drop(4.0, v, t) == pytest.approx(0.5)
    assert voltage_drop(4.0, v, t, window=200.0) == pytest.approx(3.5)
    assert np.isnan(voltage_drop(4.0, v, t - 1000.0))  # no sample in the window


def test_detector_robust_to_glitch_and_noise():
    rng = np.random.default_rng(0)
    t = np.arange(0, 300, 0.1)
    f = np.clip((t - 50) * 20, 0, None)
    v = 4.0 + 0.002 * rng.standard_normal(t.size)
    v[1000:1003] = 0.5  # a 0.3-s glitch that recovers: not a short
    assert not detect_short_onset(t, v, f).detected
    v2 = v.copy()
    v2[t >= 200] -= 1.0
    onset = detect_short_onset(t, v2, f)
    assert onset.detected and abs(onset.time - 200) < 0.5


def test_censored_temperature(combined):
    c = combined.sel(test="LCO-LP-6400mAh-100SOC-cell1")
    assert bool(c.temperature_peak_censored) and abs(float(c.temperature_peak) - 423.15) < 1.5
    assert not bool(combined.sel(test="500mAh1-20S0C").temperature_peak_censored)
    assert float(combined.sel(test="500mAh1-20S0C").temperature_rise_rate_max) > 0.5  # K/s


def test_peak_within_the_window(combined):
    """The peak thermocouple temperature within 60 s of the onset (`simulators.features.peak_within`): the never
    shorted Soteria SCC cells have none; every ORNL 0.5 A h pouch, which drains through its short within a minute and
    never ran away, stays below 95 °C and uncensored; the large-cell runaways that reached the logger's 150 °C
    within the minute are censored at it; the shared function clips at the ceiling and reads only the window."""
    from simulators.features import THERMOCOUPLE_CEILING, peak_within

    fam, peak = combined.cell_family.values, combined.temperature_peak_window.values
    censored = combined.temperature_peak_window_censored.values
    assert np.isnan(peak[fam == "Soteria SCC"]).all()
    small = fam == "LCO pouch 0.5 Ah"
    assert small.sum() >= 13 and np.all(peak[small] < 95.0 + 273.15) and not censored[small].any()
    assert bool(censored[list(combined.test.values).index("LCO-LP-6400mAh-100SOC-cell1")])
    assert np.all(np.abs(peak[censored] - THERMOCOUPLE_CEILING) < 1.5)
    t = np.linspace(-10.0, 200.0, 2101)
    temp = 300.0 + np.where(t > 0, 2.0 * t, 0.0)  # 2 K/s from the onset
    assert peak_within(t, temp) == pytest.approx(420.0)
    assert peak_within(t, temp + 10.0) == THERMOCOUPLE_CEILING
    assert np.isnan(peak_within(t - 1000.0, temp))


def test_combined_contract(combined):
    for name, var in combined.variables.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    assert combined.displacement.size == 201 and np.isclose(float(combined.displacement[-1]), 0.02)
    snl = combined.sel(test="SNL_NMC-LMO_Graphite_26Ah_50SOC_a")
    assert np.isfinite(snl.force_indenter).sum() > 50
    assert 0 < float(snl.displacement_short_onset) < 0.012
    ornl = combined.sel(test="500mAh1-20S0C")
    assert np.isnan(ornl.force_indenter).all()  # no measured displacement → NaN (documented)
    assert np.isfinite(ornl.temperature_max_tc.sel(time_since_onset=60.0))
    assert json.loads(combined.attrs["skipped"])


def test_real_nc_round_trip(combined, tmp_path):
    from risk.data import read_real, write_real
    path = write_real(combined, tmp_path / "real.nc")
    back = read_real(path)
    assert back.short_detected.dtype == bool and back.cell_family.dtype.kind == "U"
    assert list(back.test.values) == list(combined.test.values)
    np.testing.assert_array_equal(back.temperature_peak_censored.values, combined.temperature_peak_censored.values)
    np.testing.assert_allclose(back.force_peak.values, combined.force_peak.values)
