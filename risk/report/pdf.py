"""HTML → PDF with headless Chromium (Debian package ``chromium``).

Chromium runs with a fresh temporary profile, no network services, no sandbox (containers/root) and
no GPU, and prints the page with CSS ``@page`` rules honoured.

Examples
--------
>>> html_to_pdf("runs/demo/report.html", "runs/demo/report.pdf")   # doctest: +SKIP
PosixPath('runs/demo/report.pdf')
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executables tried, in order; ``TRISK_CHROMIUM`` overrides."""

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
                  "--mute-audio", "--hide-scrollbars")
"""Flags shared by every headless Chromium run of the project."""


class MissingToolError(RuntimeError):
    """A required external program is not installed; the message names the Debian package."""


def find_chromium() -> str:
    """Path of a Chromium/Chrome executable.

    Raises
    ------
    MissingToolError
        If none is found (install the Debian package ``chromium``).
    """
    override = os.environ.get("TRISK_CHROMIUM")
    if override:
        if shutil.which(override) is None:
            raise MissingToolError(f"TRISK_CHROMIUM={override!r} is not an executable")
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise MissingToolError("headless Chromium is needed to write the PDF report but was not "
                           "found on PATH; install the Debian package `chromium` "
                           "(apt-get install -y chromium) or set TRISK_CHROMIUM")


def chromium_command(*extra: str, user_data_dir: str | Path) -> list[str]:
    """Command line of a headless Chromium run with a fresh profile in ``user_data_dir``."""
    return [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", *extra]


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 120.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium.

    Parameters
    ----------
    html_path : a self-contained HTML file.
    pdf_path : the PDF to write (replaced if present).
    timeout : seconds before Chromium is stopped.

    Raises
    ------
    MissingToolError
        If Chromium is not installed.
    RuntimeError
        If Chromium fails or writes no PDF (its stderr tail is in the message).
    """
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="trisk-chromium-") as profile:
        cmd = chromium_command("--no-pdf-header-footer", "--print-to-pdf-no-header",
                               "--run-all-compositor-stages-before-draw",
                               f"--print-to-pdf={pdf_path}", html_path.as_uri(),
                               user_data_dir=profile)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"chromium did not finish printing {html_path} within "
                               f"{timeout:g} s") from err
    if proc.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"chromium failed to print {html_path} to PDF "
                           f"(exit {proc.returncode}):\n{tail}")
    return pdf_path
