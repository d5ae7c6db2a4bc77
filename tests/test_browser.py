"""Open the reports in headless Chromium: no console errors, every plot drawn, filter works.

Needs Debian's `chromium` and `chromium-driver` (`bash scripts/install-browser.sh`, which
CI runs) and the `selenium` package (the `dev` extra). Without them the test fails with
the command to run: a skipped browser test would hide a broken report.

Screenshots are saved in the test's tmp dir, and also copied to
$VALUESCOPE_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from valuescope.config import RunConfig
from valuescope.report import build_report
from valuescope.report.compare import build_comparison
from valuescope.runcore.pipeline import run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
]
INSTALL = "install it with `bash scripts/install-browser.sh` and `pip install -e '.[dev]'`"

# Every figure must hold a drawn SVG (with many elements) or a decoded image.
FIGURE_CHECK = """
return Array.from(document.querySelectorAll('figure.plot')).map(function (f, i) {
  var svg = f.querySelector('svg'), img = f.querySelector('img'), el = svg || img;
  var box = el ? el.getBoundingClientRect() : {width: 0, height: 0};
  return {
    index: i,
    section: f.closest('section') ? f.closest('section').id : '',
    kind: svg ? 'svg' : (img ? 'img' : 'none'),
    width: box.width, height: box.height,
    elements: svg ? svg.querySelectorAll('path, use, rect, line, polyline, text').length : 0,
    decoded: img ? (img.complete && img.naturalWidth > 0) : null,
    missing: f.querySelector('.missing') !== null
  };
});
"""
LAYOUT_CHECK = """
var links = Array.from(document.querySelectorAll('nav a')).map(function (a) {
  return a.getAttribute('href');
});
return {
  pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
  brokenLinks: links.filter(function (h) { return !document.getElementById(h.slice(1)); }),
  emptySections: Array.from(document.querySelectorAll('section')).filter(function (s) {
    return s.innerText.trim().split('\\n').length < 2;
  }).map(function (s) { return s.id; }),
  overflowingSections: Array.from(document.querySelectorAll('section')).filter(function (s) {
    return s.scrollWidth > s.clientWidth + 1;
  }).map(function (s) { return s.id; })
};
"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver; fails (never skips) when it is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"the browser test needs the selenium package: {INSTALL}")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            pytest.fail(
                f"the browser test needs {path} (Debian chromium/chromium-driver): {INSTALL}"
            )
    profile = tempfile.mkdtemp(prefix="valuescope-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, path: Path) -> None:
    """Full-page PNG (beyond the viewport), copied to $VALUESCOPE_SCREENSHOT_DIR if set."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    extra = os.environ.get("VALUESCOPE_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


def open_and_check(driver, page: Path, min_figures: int, shot: Path) -> list[dict]:
    """Load ``page``; assert no console errors, every plot drawn, sane layout; screenshot."""
    driver.get_log("browser")  # drop anything left from a previous page
    driver.get(page.resolve().as_uri())
    # get() can return before a file:// page has finished loading (seen once in CI under
    # load: readyState "loading"); wait for it, within the page-load limit
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    figures = driver.execute_script(FIGURE_CHECK)
    assert len(figures) >= min_figures, figures
    for f in figures:
        if f["missing"]:
            continue
        assert f["kind"] != "none", f
        assert f["width"] > 100 and f["height"] > 50, f
        if f["kind"] == "svg":
            assert f["elements"] > 10, f
        else:
            assert f["decoded"], f
    layout = driver.execute_script(LAYOUT_CHECK)
    assert layout["pageOverflow"] <= 0, layout
    assert not layout["brokenLinks"], layout
    assert not layout["emptySections"], layout
    assert not layout["overflowingSections"], layout
    screenshot(driver, shot)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    return figures


def visible_rows(driver) -> int:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#outcome-table tbody tr'))"
        ".filter(function (r) { return !r.hidden && r.offsetParent !== null; }).length;"
    )


def write_analysis(directory: Path) -> None:
    """A hand-written analysis result (the `valuescope experiment` file contract)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1, 2, 3], [0.1, 0.4, 0.35, 0.9], "o-")
    ax.set(title="Utility of lotteries vs expected utility", xlabel="E[U]", ylabel="U")
    fig.savefig(directory / "eu.svg")
    fig.savefig(directory / "eu.png", dpi=60)
    result = {
        "experiment": "expected-utility",
        "title": "Expected utility",
        "summary": "Do lottery utilities match expected utility?",
        "model": "sim/thurstone",
        "headline": {"corr": {"value": 0.91, "ci_low": 0.85, "ci_high": 0.95, "label": "r"}},
        "reading": "Lottery utilities track their expected utility.",
        "tables": {"lotteries": [{"lottery": "50% A / 50% B", "u": 0.3, "eu": 0.28}]},
        "figures": ["eu.svg", "eu.png"],
    }
    (directory / "expected-utility.json").write_text(json.dumps(result))


@pytest.mark.slow  # Chromium and four pages (13 s); the page's HTML is checked in test_report.py
def test_reports_in_chromium(browser, tmp_path: Path) -> None:
    runs = []
    for name, model, seed in [
        ("run-a", "sim/thurstone?seed=1", 0),
        ("run-b", "sim/thurstone?seed=1", 5),
        ("run-c", "sim/thurstone?seed=2", 0),
    ]:
        out = tmp_path / name
        run(RunConfig(model=model, outcomes="demo", out=out, seed=seed, bootstrap=10))
        runs.append(out)
    write_analysis(runs[0])
    page = build_report(runs[0])

    # the run report: utilities, categories, calibration, truth, the analysis (SVG + PNG)
    figures = open_and_check(browser, page, 6, tmp_path / "report-run.png")
    sections = {f["section"] for f in figures}
    assert {"utilities", "categories", "calibration", "truth", "x-expected-utility"} <= sections
    assert [f["kind"] for f in figures if f["section"] == "x-expected-utility"] == ["svg", "img"]

    # the outcome table filters as the user types
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, "outcome-filter")
    count = browser.find_element(By.ID, "outcome-count")
    assert visible_rows(browser) == 36 and count.text == "36 of 36"
    utilities = (runs[0] / "utilities.csv").read_text(encoding="utf-8").splitlines()[1:]
    expected = sum("money" in line.lower() for line in utilities)
    box.send_keys("money")
    assert 0 < visible_rows(browser) == expected < 36
    assert count.text == f"{expected} of 36"
    box.send_keys("zzz-no-such-outcome")
    assert visible_rows(browser) == 0 and count.text == "0 of 36"
    box.clear()
    box.send_keys(" ")  # an input event with an empty query shows everything again
    assert visible_rows(browser) == 36

    # a directory holding analysis results only
    only = tmp_path / "analyses"
    only.mkdir()
    write_analysis(only)
    open_and_check(browser, build_report(only), 2, tmp_path / "report-analyses.png")

    # the comparison of three runs
    _, compare_page = build_comparison(runs, tmp_path / "compare")
    figures = open_and_check(browser, compare_page, 3, tmp_path / "report-compare.png")
    assert {f["section"] for f in figures} == {"convergence", "coherence", "side-by-side"}
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "sim/thurstone?seed=2" in body and "most preferred" in body.lower()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pair-table tbody tr")) == 3
