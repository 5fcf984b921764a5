"""The dashboard in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium) against the app served by waitress on 127.0.0.1, over real data (the
engine-made history of test_web). Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

import pytest

from flowlord.runtime.task import Task
from flowlord.web import serve_app
from test_web import XSS, build_site

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (the README's test command installs them)",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    site = build_site(tmp_path_factory.mktemp("browser"))
    stop, port = serve_app(site.app.app, "127.0.0.1", 0)
    site.base = f"http://127.0.0.1:{port}"
    yield site
    stop()
    site.store.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="flowlord-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shoot(driver, name: str) -> None:
    """A screenshot of the whole page, beyond the window (Chrome DevTools)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    width, height = max(1400, int(size["width"])), min(int(size["height"]), 8000)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    (SHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and "favicon" not in e["message"]]


def wait(driver, condition, timeout: float = 10):
    return WebDriverWait(driver, timeout).until(condition)


@pytest.mark.parametrize("name, path, heading", [
    ("tasks", "/web/task?date=2024-01-15", "Tasks"),
    ("task-chain", "/web/task/{first}", "Task"),
    ("workflows", "/web/workflow", "Workflows"),
    ("alerts", "/web/alert?date=2024-01-15", "Alerts"),
    ("files", "/web/files?date=2024-01-15", "Files"),
    ("backload", "/web/backload", "Backload"),
    ("about", "/web/about", "About"),
    ("code", "/codes/FL604", "FL604"),
    ("not-found", "/web/nowhere", "404"),
    ("bad-request", "/web/task?date=2024-02-31", "400"),
])
def test_each_page_loads_cleanly(served, browser, name, path, heading):
    browser.get(served.base + path.format(first=served.ids.first))
    assert browser.find_element(By.CSS_SELECTOR, "h1").text.startswith(heading)
    assert browser.find_element(By.CSS_SELECTOR, "header.top nav").is_displayed()
    # the stylesheet applied (no CDN, no blocked asset): the top bar is dark
    color = browser.find_element(By.CSS_SELECTOR, "header.top").value_of_css_property("background-color")
    assert color in ("rgba(17, 24, 39, 1)", "rgb(17, 24, 39)")
    shoot(browser, name)
    errors = console_errors(browser)
    if name in ("not-found", "bad-request"):
        errors = [e for e in errors if "status of 40" not in e]
    assert errors == []


def test_filters_click_through(served, browser):
    browser.get(served.base + "/web/task?date=2024-01-15")
    Select(browser.find_element(By.NAME, "type")).select_by_visible_text("extract")
    wait(browser, ready.url_contains("type=extract"))
    types = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.tasks td a.type")}
    assert types == {"extract"}
    browser.find_element(By.CSS_SELECTOR, "a.count.r-error").click()
    wait(browser, ready.url_contains("result=error"))
    badges = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.tasks .badge")}
    assert badges == {"error"}
    shoot(browser, "tasks-filtered")
    browser.find_element(By.LINK_TEXT, "Clear").click()
    wait(browser, lambda d: "result=" not in d.current_url)
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr")) >= 9
    browser.find_element(By.CSS_SELECTOR, 'a[aria-label="previous day"]').click()
    wait(browser, ready.url_contains("date=2024-01-14"))
    assert "No tasks were created on 2024-01-14" in browser.find_element(By.CSS_SELECTOR, ".empty").text
    browser.find_element(By.CSS_SELECTOR, 'a[aria-label="next day"]').click()
    wait(browser, ready.url_contains("date=2024-01-15"))
    link = browser.find_element(By.CSS_SELECTOR, f'a[href="/web/task/{served.ids.second}"]')
    link.click()
    wait(browser, ready.url_contains("/web/task/" + served.ids.second))
    tries = browser.find_elements(By.CSS_SELECTOR, "section.step tbody tr")
    assert len(tries) == 2 and "retr" in browser.find_element(By.CSS_SELECTOR, "section.step h2").text
    browser.get(served.base + "/web/files?date=2024-01-15")
    browser.find_element(By.PARTIAL_LINK_TEXT, "matched no phase").click()
    wait(browser, ready.url_contains("show=unmatched"))
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".file .path")]
    assert paths == ["/other/file.txt"]


def test_backload_preview_then_execute(served, browser):
    browser.get(served.base + "/web/backload")
    preview = browser.find_element(By.ID, "preview")
    Select(browser.find_element(By.ID, "phase")).select_by_visible_text("extract — etl.toml")
    assert browser.find_element(By.ID, "template").text == "?hour={yyyy}-{mm}-{dd}T{hh}"
    browser.find_element(By.CSS_SELECTOR, 'input[name=mode][value=range]').click()
    browser.find_element(By.ID, "from").send_keys("2018-03-01T00")
    browser.find_element(By.ID, "to").send_keys("2018-03-01T02")
    Select(browser.find_element(By.ID, "by")).select_by_value("hour")
    assert preview.is_enabled()
    preview.click()
    banner = wait(browser, ready.visibility_of_element_located((By.CSS_SELECTOR, "#outcome .banner")))
    assert banner.text.startswith("DRY RUN ONLY") and "3 tasks would be sent" in banner.text
    cells = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results tbody td:nth-child(3)")]
    assert cells == ["?hour=2018-03-01T00", "?hour=2018-03-01T01", "?hour=2018-03-01T02"]
    shoot(browser, "backload-preview")
    before = len(served.bus.published("extract"))
    browser.find_element(By.ID, "execute").click()
    wait(browser, ready.alert_is_present()).accept()
    wait(browser, ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#outcome .banner"), "Executed"))
    assert "Sent 3 tasks" in browser.find_element(By.CSS_SELECTOR, "#outcome .banner").text
    sent = [Task.from_json(m).info for m in served.bus.published("extract")[before:]]
    assert sent == cells
    assert not browser.find_element(By.ID, "execute").is_enabled()  # once per preview
    shoot(browser, "backload-executed")
    # a request past the cap says so
    browser.find_element(By.ID, "from").clear()
    browser.find_element(By.ID, "from").send_keys("2000-01-01")
    preview.click()
    wait(browser, ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#outcome .banner"), "limit"))
    assert browser.find_element(By.CSS_SELECTOR, "#outcome .banner.bad").text.startswith("Error:")
    shoot(browser, "backload-error")


def test_diagram_is_an_svg_of_the_phases(served, browser):
    browser.get(served.base + "/web/workflow")
    svg = browser.find_element(By.CSS_SELECTOR, ".diagram-box svg.diagram")
    assert svg.get_dom_attribute("viewBox")
    phases = {g.get_attribute("data-phase"): g.get_attribute("data-state")
              for g in svg.find_elements(By.CSS_SELECTOR, "g.phase")}
    assert set(phases) == {"extract", "load", "ingest", "report", "rollup"}
    assert phases["load"] == "complete" and phases["report"] == "none"
    texts = " ".join(t.text for t in svg.find_elements(By.TAG_NAME, "text"))
    assert "extract" in texts and "files: /data/*/in.csv" in texts
    fill = browser.execute_script(
        "const g = document.querySelector('g.phase[data-phase=load]');"
        "return getComputedStyle(g.querySelector('ellipse, polygon, path')).fill;")
    assert fill == "rgb(187, 247, 208)"  # complete: green


def test_script_in_task_data_shows_as_text_and_never_runs(served, browser):
    browser.get(served.base + "/web/task?date=2024-01-15")
    cells = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "table.tasks td")]
    assert XSS in cells
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    browser.get(served.base + "/web/task/probe-1")
    assert XSS in browser.find_element(By.CSS_SELECTOR, "section.step").text
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    shoot(browser, "task-xss")


def test_run_again_adds_a_try_to_the_chain(served, browser):
    console_errors(browser)  # drains what earlier tests' pages logged
    browser.get(f"{served.base}/web/task/{served.ids.second}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.step tbody tr")) == 2
    before = len(served.bus.published("extract"))
    browser.find_element(By.CSS_SELECTOR, "form.rerun button").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.step tbody tr")) == 3)
    assert browser.current_url == f"{served.base}/web/task/{served.ids.second}"
    last = browser.find_elements(By.CSS_SELECTOR, "section.step tbody tr")[-1]
    assert "running" in last.text
    assert not browser.find_elements(By.CSS_SELECTOR, "form.rerun")  # until its result is in
    (again,) = [Task.from_json(m) for m in served.bus.published("extract")[before:]]
    assert again.id == served.ids.second
    shoot(browser, "task-run-again")
    assert console_errors(browser) == []
