"""Acceptance: the HTML loads cleanly in headless Chromium and the PDF renders to pages."""
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from risk.report.build import build_report

from .browser import load_page, require


@pytest.fixture(scope="module")
def built(genuine_run, tmp_path_factory):
    require("chromium", "chromium")
    import shutil
    run = tmp_path_factory.mktemp("browser") / "tiny-nail"
    shutil.copytree(genuine_run[0], run)
    return build_report(run, genuine_run[1])


def test_html_loads_without_errors_and_every_image_renders(built):
    html, _ = built
    page = load_page(html)
    assert page["title"].startswith("Thermal-runaway risk report")
    assert page["console_errors"] == [] and page["exceptions"] == []
    assert page["log_errors"] == []
    assert len(page["images"]) >= 6
    for complete, width, height, alt in page["images"]:
        assert complete and width > 0 and height > 0, f"image not rendered: {alt}"
    external = [u for u in page["requests"] if not u.startswith(("file:", "data:"))]
    assert external == []


def test_pdf_pages_are_not_blank(built, tmp_path):
    _, pdf = built
    require("pdftoppm", "poppler-utils")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "page")], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        img = imread(page)[..., :3]
        assert img.shape[0] > 100
        ink = (img < 0.9).any(axis=-1).mean()
        if ink <= 0.005:  # little ink: a last page may hold one heading and its line, but it must hold text
            text = subprocess.run(["pdftotext", "-f", str(number), "-l", str(number), str(pdf), "-"],
                                  capture_output=True, text=True, check=True, timeout=60).stdout
            assert ink > 0.001 and len("".join(text.split())) >= 20, f"{page.name} is blank (ink {ink:.4f})"


def test_page_one_gives_answer_verdict_validation_and_sbc(built):
    """Page 1 of the PDF (issue 17): the scenarios' P(TR), the verdict, this model's leave-family-out log loss
    against its baselines, the SBC summary and the credibility levels."""
    import json

    import xarray as xr

    from risk.report.numbers import number

    html, pdf = built
    require("pdftotext", "poppler-utils")
    page1 = subprocess.run(["pdftotext", "-l", "1", str(pdf), "-"], check=True, capture_output=True,
                           text=True, timeout=60).stdout
    flat = " ".join(page1.split())
    tight = "".join(page1.split())  # table cells wrap long scenario names and numbers across lines
    pred = xr.open_dataset(html.parent / "predictions.nc")
    for i, scen in enumerate(pred["scenario"].values):
        assert "".join(str(scen).split()) in tight
        assert "".join(number(float(pred["p_tr_mean"].values[i])).split()) in tight
    assert "Diagnostics passed" in flat and "INVALID" not in flat
    lfo = json.loads((html.parent / "crossval.json").read_text())["leave_family_out"]
    assert "Whole cell families left out" in flat
    for model in ("physics", "metadata", "family_frequency"):
        assert number(lfo[model]["log_loss"], 3) in flat
    assert "Simulation-based calibration of the whole inference" in flat and "pass" in flat
    for factor in ("Verification", "Validation", "Input pedigree", "Results uncertainty", "Use history"):
        assert factor in flat
    assert "1. Credibility assessment" not in flat  # the full section starts on page 2
