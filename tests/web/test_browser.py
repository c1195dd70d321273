"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium.

The example project runs a stepwise CSV import under a real tick while
`taskcron web` serves it; the browser logs in with the token, watches the
import's progress bar advance without a reload, retries a failed task, and
shows a `<script>` title as text. Screenshots go to the test's directory, and
to TASKCRON_SCREENSHOTS (a directory) when set: the documentation's picture
(docs/pages/images/dashboard.png) is taken so.

Skipped, saying why, where no Chromium or chromedriver can be had.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, script
from tests.web.conftest import SCRIPT_TITLE, Server, run_tc, start_server, stop
from tests.web.test_command import start_import

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 30  #: The longest wait for anything the page should show, in seconds.


def _text(driver: Any, locator: tuple[str, str]) -> str | None:
    """The text of the element at `locator`, or None while the page is replacing it: an
    element replaced between finding and reading it is stale, which chromedriver says
    either as such or as an inspector error naming a node no longer in the document."""
    try:
        text: str = driver.find_element(*locator).text
    except StaleElementReferenceException:
        return None
    except WebDriverException as exc:
        if "does not belong to the document" not in str(exc):
            raise
        return None
    return text


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver packages")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as exc:  # a driver that cannot start is an environment without Chromium
        pytest.skip(f"Chromium did not start: {str(exc).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shop(example_config: Path) -> Iterator[tuple[Server, dict[str, int], subprocess.Popen[str]]]:
    """The example project with a failed invoice, a few done tasks, a `<script>` title
    waiting, and a CSV import running under a tick; served by `taskcron web`."""
    config = example_config

    def schedule(*args: str) -> int:
        return int(run_tc(config, "schedule", *args).stdout)

    ids = {"failed": schedule("billing.invoices", "--task", "send_invoice", "--data", "{}")}
    run_tc(config, "tick", "--module", "billing", check=False)
    for n in range(3):
        data = json.dumps({"invoice": 2001 + n, "customer": n})
        schedule("billing.invoices", "--task", "send_invoice", "--data", data, "--owner", "ann")
    data = json.dumps({"images": ["a.png", "b.png"]})
    schedule("media.images", "--task", "resize-images", "--data", data)
    run_tc(config, "tick", "--drain")
    ids["script"] = schedule("mail.welcome", "--title", SCRIPT_TITLE, "--in", "1h", "--", "true")
    schedule("reports.daily", "--call", "shop_tasks:nightly_report", "--cron", "0 6 * * *")
    tick = start_import(config, rows=20000)
    server = start_server(config)
    try:
        yield server, ids, tick
    finally:
        stop(server.process)
        stop(tick)


def screenshot(driver: Any, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    folder = os.environ.get("TASKCRON_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, Path(folder) / name)


def test_the_dashboard_in_chromium(browser: Any, shop: Any, tmp_path: Path) -> None:
    server, ids, _ = shop
    # The page replaces what it redraws (a live update, the reload after an action):
    # an element read as it goes is read again at the next poll.
    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )

    browser.get(f"{server.base}/login?token={server.token}")
    wait.until(lambda d: d.current_url == server.base + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"

    # The running import's progress bar advances, and the page is never reloaded.
    browser.execute_script(
        "window.notReloaded = true; window.heard = [];"
        "document.addEventListener('taskcron:progress', e => window.heard.push(e.detail.id));"
    )
    bar = "[data-live=running] tr[data-task-id] progress"
    first = wait.until(lambda d: _progress(d, bar))
    later = wait.until(lambda d: (v := _progress(d, bar)) and v > first and v)
    assert later > first
    assert browser.execute_script("return window.notReloaded === true")
    assert browser.execute_script("return window.heard.length") >= 1
    running = browser.find_element(By.CSS_SELECTOR, "[data-live=running] tr[data-task-id]")
    assert "catalog.import" in running.text
    screenshot(browser, tmp_path, "dashboard.png")

    # Retry a failed task: it is queued again.
    browser.get(f"{server.base}/tasks/{ids['failed']}")
    state = (By.CSS_SELECTOR, "article [data-field=state]")
    assert browser.find_element(*state).text == "failed"
    browser.find_element(By.CSS_SELECTOR, "button[data-action=retry]").click()
    wait.until(lambda d: _text(d, state) == "queued")
    screenshot(browser, tmp_path, "retried.png")

    # A <script> title is text, and nothing ran it.
    browser.get(f"{server.base}/tasks?state=all")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-task-id='{ids['script']}'] .title")
    assert row.text == SCRIPT_TITLE
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is what raises
    screenshot(browser, tmp_path, "tasks.png")


def _progress(driver: Any, selector: str) -> float | None:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    if not found or found[0].get_attribute("value") in (None, "", "0"):
        return None
    if found[0].get_attribute("hidden") is not None:
        return None
    return float(found[0].get_attribute("value"))


COUNTS = """
var body = document.querySelector("[data-live=counts]");
var states = Array.from(body.closest("table").querySelectorAll("thead th[data-state]"));
for (const row of body.rows) {
  if (row.cells[0].textContent !== arguments[0]) { continue; }
  const counts = {};
  states.forEach((th, i) => {
    if (row.cells[i + 1].textContent) { counts[th.dataset.state] = row.cells[i + 1].textContent; }
  });
  return counts;
}
return null;
"""


def test_a_finished_task_leaves_running_and_the_counts_follow_without_a_reload(
    browser: Any, example_config: Path, tmp_path: Path
) -> None:
    config, go = example_config, tmp_path / "go"
    wait_for_go = f"while [ ! -e '{go}' ]; do sleep 0.05; done"
    run_tc(config, "init")
    task_id = int(run_tc(config, "schedule", "shop.wait", "--", "sh", "-c", wait_for_go).stdout)
    tick = subprocess.Popen(
        [script(), "--config", str(config), "tick", "--module", "shop"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    server = start_server(config)
    try:
        wait = WebDriverWait(
            browser, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
        )
        row = f"[data-live=running] tr[data-task-id='{task_id}']"
        browser.get(f"{server.base}/login?token={server.token}")
        wait.until(lambda d: d.current_url == server.base + "/")
        if not browser.find_elements(By.CSS_SELECTOR, row):
            browser.get(server.base + "/")  # loaded before the tick claimed it
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        assert browser.execute_script(COUNTS, "shop.wait") == {"running": "1"}
        for field in ("step-elapsed", "job-elapsed"):
            cell = browser.find_element(By.CSS_SELECTOR, f"{row} [data-field={field}]")
            assert cell.text.endswith("s"), cell.text
        browser.execute_script("window.notReloaded = true;")

        go.touch()

        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        running = browser.find_element(By.CSS_SELECTOR, "[data-live=running]")
        assert running.text == "Nothing is running."
        wait.until(lambda d: d.execute_script(COUNTS, "shop.wait") == {"done": "1"})
        assert browser.execute_script("return window.notReloaded === true")
        screenshot(browser, tmp_path, "finished.png")
    finally:
        stop(server.process)
        stop(tick)
