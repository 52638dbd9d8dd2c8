"""Drive Debian's Chromium through Superset like a person: log in, open the dashboard, look.

Runs as a separate process under var/superset-venv/bin/python (Selenium ships with Superset
there), so the project's .venv needs no browser tooling; the test reads the JSON it prints.
Nothing is downloaded: the browser and driver are Debian's ``chromium`` / ``chromium-driver``
and Selenium Manager is switched off (SE_OFFLINE).

    python superset_browser.py dashboard --slug wikimedia-live-trends --screenshot out.png
    python superset_browser.py explore --chart-ids 1,2,3   # opens each chart once in Explore
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
# Everything that would make the browser talk to the internet on its own is off.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--no-default-browser-check",
    "--hide-scrollbars",
    # Belt and braces next to Superset's CSP: names other than loopback do not resolve at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

# What a finished chart contains, per kind: ECharts canvas/SVG, a table, or a big number.
RENDERED_SELECTOR = "canvas, svg, table, .superset-legacy-chart-big-number, .big_number"
STATE_SCRIPT = """
const holders = [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')];
return holders.map((h) => {
  const title = (h.querySelector('[data-test="editable-title"], .header-title, .editable-title')
                 || {}).textContent || '';
  const loading = !!h.querySelector('[data-test="loading-indicator"], .loading');
  const errorNode = h.querySelector('[data-test="error-alert"], .alert-danger, .ant-alert-error');
  const rendered = !!h.querySelector(arguments[0]);
  const empty = /No results were returned|No data/i.test(h.innerText);
  return {title: title.trim(), loading, rendered, empty, text: h.innerText.slice(0, 2000),
          error: errorNode ? errorNode.innerText.trim().slice(0, 500) : null};
});
"""
# Without a CJK font Chromium draws every Hangul syllable as the same empty box: two different
# syllables drawn in the dashboard's font then give the same pixels.
KOREAN_GLYPHS_SCRIPT = """
const font = getComputedStyle(document.body).fontFamily;
const draw = (text) => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d');
  ctx.font = `40px ${font}`;
  ctx.fillText(text, 4, 48);
  return Array.from(ctx.getImageData(0, 0, 64, 64).data).join(',');
};
const a = draw('올'), b = draw('칸'), blank = draw('');
return a !== b && a !== blank && b !== blank;
"""


def make_driver(width: int = 1600, height: int = 2200) -> tuple[webdriver.Chrome, str]:
    profile = tempfile.mkdtemp(prefix="wikistreams-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    # The network log lets a test see what each chart asked for (e.g. its time range).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver, profile


def login(driver: webdriver.Chrome, base_url: str, username: str, password: str) -> None:
    """Sign in through the form. Tried up to three times: Superset's login page posts its own
    event log as the form is sent, and when that unauthenticated answer lands after the login's
    its session cookie replaces the new one (seen once in CI: POST /login/ 302, then
    /superset/welcome/ 302 back to /login). A wrong password fails all three."""
    for attempt in range(1, 4):
        driver.get(f"{base_url}/login/")
        wait = WebDriverWait(driver, 60)
        user_box = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "input[name='username'], input#username")
        )
        user_box.send_keys(username)
        selector = "input[name='password'], input#password"
        password_box = driver.find_element(By.CSS_SELECTOR, selector)
        password_box.send_keys(password)
        password_box.send_keys(Keys.ENTER)
        try:
            WebDriverWait(driver, 20 if attempt < 3 else 60).until(
                lambda d: "/login" not in d.current_url
            )
            return
        except Exception as exc:
            if attempt == 3:
                body = driver.find_element(By.TAG_NAME, "body").text[:500]
                url = driver.current_url
                raise RuntimeError(f"login did not leave {url}; page says: {body!r}") from exc


def wait_for_charts(driver: webdriver.Chrome, expected: int, timeout: float) -> list[dict]:
    """Poll until every chart holder has finished: rendered, empty or failed."""
    deadline = time.monotonic() + timeout
    states: list[dict] = []
    while time.monotonic() < deadline:
        states = driver.execute_script(STATE_SCRIPT, RENDERED_SELECTOR)
        done = [s for s in states if not s["loading"] and (s["rendered"] or s["error"])]
        if len(states) >= expected and len(done) == len(states):
            return states
        time.sleep(1)
    return states


def chart_time_ranges(driver: webdriver.Chrome) -> list[str | None]:
    """The time range of each chart's data request (from Chrome's network log).

    One value per request: the range its queries carry (a chart's extra queries, e.g. a series
    limit, may carry none); several different ranges in one request come back joined by " | "."""
    ranges = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        request = message["params"]["request"]
        if "/api/v1/chart/data" not in request["url"] or not request.get("postData"):
            continue
        try:
            body = json.loads(request["postData"])
        except ValueError:
            continue
        if str((body.get("form_data") or {}).get("viz_type", "")).startswith("filter_"):
            continue  # a native filter loading its options, not a chart
        found = {q["time_range"] for q in body.get("queries", []) if q.get("time_range")}
        ranges.append(" | ".join(sorted(found)) if found else None)
    return ranges


def cmd_dashboard(args: argparse.Namespace) -> dict:
    driver, _profile = make_driver()
    try:
        started = time.monotonic()
        login(driver, args.base_url, args.username, args.password)
        query = f"?{args.url_params}" if args.url_params else ""
        driver.get(f"{args.base_url}/superset/dashboard/{args.slug}/{query}")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '[data-test="dashboard-component-chart-holder"]'
            )
        )
        states = wait_for_charts(driver, args.expected_charts, args.timeout)
        if args.wait_for_text:  # a chart's content, beyond its header: the chart has drawn
            WebDriverWait(driver, args.timeout).until(
                lambda d: args.wait_for_text in d.find_element(By.TAG_NAME, "body").text
            )
            states = driver.execute_script(STATE_SCRIPT, RENDERED_SELECTOR)
        elapsed = time.monotonic() - started
        time.sleep(2)  # let ECharts finish its entry animation before the picture
        title = driver.title
        if args.screenshot:
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            driver.save_screenshot(args.screenshot)
        return {
            "title": title,
            "charts": states,
            "korean_glyphs": driver.execute_script(KOREAN_GLYPHS_SCRIPT),
            "render_seconds": round(elapsed, 2),
            "time_ranges": chart_time_ranges(driver),
        }
    finally:
        driver.quit()


def cmd_explore(args: argparse.Namespace) -> dict:
    """Open each chart in Explore: Superset's frontend then saves the chart's query context."""
    driver, _profile = make_driver()
    results = []
    try:
        login(driver, args.base_url, args.username, args.password)
        for chart_id in [int(c) for c in args.chart_ids.split(",") if c]:
            driver.get(f"{args.base_url}/explore/?slice_id={chart_id}")
            WebDriverWait(driver, args.timeout).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, RENDERED_SELECTOR)
            )
            time.sleep(3)
            results.append({"chart_id": chart_id, "opened": True})
    finally:
        driver.quit()
    return {"explored": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["dashboard", "explore"])
    parser.add_argument("--base-url", default="http://127.0.0.1:8088")
    parser.add_argument("--username", default=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
    parser.add_argument("--password", default=os.environ.get("SUPERSET_ADMIN_PASSWORD", ""))
    parser.add_argument("--slug", default="wikimedia-live-trends")
    parser.add_argument("--expected-charts", type=int, default=1)
    parser.add_argument("--screenshot", default="")
    parser.add_argument("--url-params", default="", help="query string, e.g. native_filters=...")
    parser.add_argument("--chart-ids", default="")
    parser.add_argument("--wait-for-text", default="", help="wait until the page shows this")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    result = cmd_dashboard(args) if args.mode == "dashboard" else cmd_explore(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
