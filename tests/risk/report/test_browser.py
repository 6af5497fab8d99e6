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
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 3
    for page in pages:
        img = imread(page)[..., :3]
        assert img.shape[0] > 100
        ink = (img < 0.9).any(axis=-1).mean()
        assert ink > 0.005, f"{page.name} is blank"
