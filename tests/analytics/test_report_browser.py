"""The HTML report in a real browser: headless Chromium, no network, a screenshot to look at.

Fails (never skips) where no Chromium is installed: `make test` installs Debian's `chromium`.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app import analytics
from app.analytics import charts, load, report, sources
from app.core.pricing import Pricer
from tests.analytics.seeding import SPEC
from tests.analytics.test_charts import png_size
from tests.support.chromium import HEADLESS_FLAGS, chromium_path
from tests.support.database import FreshDatabase, make_settings

WIDTH, HEIGHT = 1280, 900  # a laptop screen
# Checks the page from inside once it has loaded; the verdict goes into the DOM Chromium dumps.
PROBE = """<script>
addEventListener("load", () => {
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth,
                                                  alt: i.alt}));
  const root = document.documentElement;
  const verdict = {images, scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
                   summaryBottom: document.querySelector(".summary").getBoundingClientRect().bottom,
                   height: root.scrollHeight,
                   subtitle: document.querySelector(".sub").textContent};
  const out = document.createElement("pre");
  out.id = "verdict";
  out.textContent = JSON.stringify(verdict);
  document.body.append(out);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        *HEADLESS_FLAGS, "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # any request outside the file would fail
        f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=5000",
    ]  # fmt: skip
    return subprocess.run(
        [chromium_path(), *flags, *args], capture_output=True, text=True, timeout=180, check=False
    )


def _render(built: report.CostReport, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Write the HTML page alone, screenshot it and return what the page says about itself."""
    out = tmp_path / "report"
    report.write_report(built, out, ["html"])
    for png in out.glob("*.png"):
        png.unlink()  # the page must stand alone
    page = out / "report.html"
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", f"{PROBE}</body>"), encoding="utf-8")
    screenshot = tmp_path / "screenshot.png"

    shot = _chromium(tmp_path, f"--screenshot={screenshot}", page.as_uri())
    dumped = _chromium(tmp_path, "--dump-dom", probed.as_uri())

    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png_size(screenshot) == (WIDTH, HEIGHT)
    found = re.search(r'<pre id="verdict">(.*?)</pre>', dumped.stdout)
    assert found, dumped.stderr[-2000:]
    verdict: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return screenshot, verdict


@pytest.mark.slow
def test_report_html_in_headless_chromium_fits_the_width_and_loads_every_image(
    seeded_db: FreshDatabase, tmp_path: Path
) -> None:
    options = report.ReportOptions(
        since=SPEC.start, until=SPEC.end, daily_budget=Decimal("1"), monthly_budget=Decimal("4")
    )
    price = Pricer(make_settings()).price
    built = report.build_report(sources.PostgresSource(seeded_db.dsn), options, price=price)
    screenshot, verdict = _render(built, tmp_path)
    shutil.copy(screenshot, "/tmp/analytics-report-screenshot.png")  # kept to look at

    assert len(verdict["images"]) == 4
    assert all(i["complete"] and i["width"] == charts.SIZE_PX[0] for i in verdict["images"])
    assert verdict["scrollWidth"] <= verdict["clientWidth"] == WIDTH  # no sideways scrolling
    assert verdict["summaryBottom"] <= HEIGHT  # the summary fits on the first screen
    assert verdict["height"] < 9000  # was ~20,000 px


@pytest.mark.slow
def test_report_html_for_one_user_in_headless_chromium_names_them_and_draws_no_empty_charts(
    seeded_db: FreshDatabase, tmp_path: Path
) -> None:
    source = sources.PostgresSource(seeded_db.dsn)
    email = str(load.load_per_user(source, load.Window(SPEC.start, SPEC.end))["email"].iloc[0])
    built = analytics.cost_report(
        source, since=SPEC.start, until=SPEC.end, user=email, settings=make_settings()
    )

    screenshot, verdict = _render(built, tmp_path)
    shutil.copy(screenshot, "/tmp/analytics-report-one-user-screenshot.png")  # kept to look at

    assert email in verdict["subtitle"]  # was "user 0e5b0102"
    alts = [i["alt"] for i in verdict["images"]]
    assert alts == ["Daily cost by model", "Cost over time", "Month to date and forecast"]
    assert all(i["complete"] and i["width"] == charts.SIZE_PX[0] for i in verdict["images"])
    assert verdict["scrollWidth"] <= verdict["clientWidth"] == WIDTH
    assert verdict["summaryBottom"] <= HEIGHT


@pytest.mark.slow
def test_report_html_without_prices_says_so_and_still_fits_the_width(
    seeded_db: FreshDatabase, tmp_path: Path
) -> None:
    options = report.ReportOptions(since=SPEC.start, until=SPEC.end)
    built = report.build_report(sources.PostgresSource(seeded_db.dsn), options)  # no price

    _, verdict = _render(built, tmp_path)

    assert "not priced" in (tmp_path / "report" / "report.html").read_text()
    assert verdict["scrollWidth"] <= verdict["clientWidth"] == WIDTH  # the note wraps
