"""The run report as a colleague opens it: Debian's Chromium (headless, through Playwright), 1,400 px wide.

Built from small synthetic ``runs/`` trees (tests/report_fixtures.py). Checks the page fits the
window (wide tables scroll inside their own box), the studies come in README order with their
headline sentences, every image decodes, and that neither the report nor a notebook rendering
asks the network for anything. Screenshots go to ``runs/report_screenshots/``.
Needs /usr/bin/chromium (``make system``); no browser is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from report_fixtures import HEADLINE_NUMBERS, write_synthetic_runs, write_wide_and_long_tables

from latentlab import report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "runs" / "report_screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian chromium not installed (make system installs it; CI requires it)",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM),
                                                       args=CHROMIUM_ARGS, viewport=VIEWPORT, headless=True)
        yield context
        context.close()


def open_page(browser, path: Path):
    """The page at ``path`` with every non-file request recorded and refused (the report is read offline)."""
    page = browser.new_page()
    remote: list[str] = []

    def refuse(route):
        remote.append(route.request.url)
        route.abort()

    page.route("http*://**", refuse)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, remote


def overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def broken_images(page) -> list[str]:
    return page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")


def test_report_fits_the_window_with_studies_in_order_and_every_image_loaded(browser, tmp_path):
    index = report.build_index(write_synthetic_runs(tmp_path / "runs"))
    page, remote = open_page(browser, index)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report_top.png"))
    page.screenshot(path=str(SHOTS / "report_full.png"), full_page=True)

    width, window = overflow(page)
    assert width <= window, f"the page is {width} px wide in a {window} px window"
    assert page.locator("h1").inner_text() == "latentlab — run report"
    titles = page.locator("section h2").all_inner_texts()
    assert titles[:4] == [s.title for s in report.STUDIES] and titles[4] == "sweep: setvae"
    headlines = page.locator("section p.headline").all_inner_texts()
    assert len(headlines) == 4
    for study, text in zip(report.STUDIES, headlines, strict=True):
        assert HEADLINE_NUMBERS[study.directory] in text, (study.directory, text)
    assert page.locator("section h3", has_text="What the notebook concluded").count() == 4
    images = page.evaluate("document.images.length")
    assert images == 9 and broken_images(page) == []  # 4 key charts, 4 under "More charts", the sweep's
    page.locator("details", has_text="More charts").first.locator("summary").click()
    assert broken_images(page) == []
    assert remote == []
    page.close()


def test_notebook_rendering_opens_offline_with_its_outputs(browser, tmp_path):
    runs = write_synthetic_runs(tmp_path / "runs")
    report.build_index(runs)
    page, remote = open_page(browser, runs / "sfmn" / "02_sfmn.html")
    page.screenshot(path=str(SHOTS / "notebook_sfmn.png"), full_page=True)
    assert "AUC 0.881" in page.inner_text("body")
    formula = page.locator("math").first  # TeX drawn by the browser itself (MathML), no MathJax
    assert formula.is_visible() and formula.bounding_box()["width"] > 20
    assert page.evaluate("document.images.length") == 1 and broken_images(page) == []
    width, window = overflow(page)
    assert width <= window
    assert remote == [], f"the notebook rendering asked the network for {remote}"
    page.close()


def test_wide_table_scrolls_inside_its_box_and_long_table_is_collapsed(browser, tmp_path):
    write_wide_and_long_tables(tmp_path / "runs")
    index = report.build_index(tmp_path / "runs")
    page, _ = open_page(browser, index)
    width, window = overflow(page)
    assert width <= window, f"a 41-column table widened the page to {width} px"
    box = page.locator(".table", has_text="wide").locator(".table-box")
    scroll, client = box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    assert scroll > client, "the wide table should scroll inside its own box"
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "wide_table_scrolled.png"))
    long = page.locator("details.table", has_text="long")
    assert long.evaluate("d => d.open") is False
    assert long.locator("tbody tr").first.is_visible() is False
    long.locator("summary").click()
    assert long.locator("tbody tr").count() == report.MAX_ROWS
    assert overflow(page)[0] <= window
    page.close()
