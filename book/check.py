"""`make book-check`: open every page of the built book in headless Chromium and fail on faults.

Serves the site (default ``outputs/book/``) on 127.0.0.1, opens every ``.html`` page with
Selenium and Debian's ``chromium`` + ``chromium-driver``, and fails on a console error, a broken
internal link (missing file or anchor), an image that did not load, a request to another host,
or a page whose equations MathJax did not typeset. Saves screenshots of the landing page and the
results page under ``outputs/book-screenshots/``. Without Chromium it says so and exits 0
(``--require-browser``: exits 2).
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
SCREENSHOTS = {"index.html": "landing.png", "results.html": "results.png"}
INSTALL = "apt-get install -y chromium chromium-driver"


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is not installed."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the check reports what failed; no access log
        pass


class _Ids(html.parser.HTMLParser):
    """Every ``id`` and ``name`` of a page: the anchors a ``#fragment`` may point to."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = reply.read()
            kind = reply.headers.get_content_type()
            return reply.status, body.decode("utf-8", "replace") if kind == "text/html" else ""
    except urllib.error.HTTPError as err:
        return err.code, ""


# In the page: scroll to the end (lazy images), wait for MathJax, then report what is there.
_REPORT = """
const done = arguments[arguments.length - 1];
window.scrollTo({top: document.body.scrollHeight, behavior: "instant"});
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
typeset.then(() => new Promise(r => setTimeout(r, 200))).then(() => {
  const imgs = [...document.images];
  done({
    images: imgs.map(i => i.currentSrc || i.src),
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    resources: performance.getEntriesByType('resource').map(e => e.name),
    math: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
  });
});
"""


def check(site: Path, screenshots: Path, width: int = 1280, height: int = 1000) -> dict:
    """Open every page of ``site``; returns counts and the list of problems found."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_browser()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    if "index.html" not in pages:
        raise SystemExit(f"no index.html in {site}: run `make book` first")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    server, base = serve(site)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(60)
    problems, images, links, equations, outside = [], set(), {}, 0, set()
    screenshots.mkdir(parents=True, exist_ok=True)
    try:
        for page in pages:
            driver.get(base + page)
            seen = driver.execute_async_script(_REPORT)
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE":
                    problems.append(f"{page}: console error: {entry['message']}")
            for src in seen["broken"]:
                problems.append(f"{page}: image did not load: {src}")
            images.update(seen["images"])
            outside.update(u for u in seen["resources"] if not u.startswith((base, "data:")))
            for url in seen["links"]:  # links to other hosts are not followed (no network)
                if url.startswith(base):
                    links.setdefault(url, page)
            if seen["math"] and (seen["typeset"] < seen["math"] or seen["mathErrors"]):
                problems.append(
                    f"{page}: {seen['math']} equations, {seen['typeset']} typeset by MathJax, "
                    f"{seen['mathErrors']} with TeX errors"
                )
            equations += seen["typeset"]
            if page in SCREENSHOTS:  # what a reader sees first
                driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'})")
                driver.save_screenshot(str(screenshots / SCREENSHOTS[page]))
        broken = 0
        bodies: dict[str, tuple[int, str]] = {}
        for url, page in sorted(links.items()):
            target, _, fragment = url.partition("#")
            if target not in bodies:
                bodies[target] = _fetch(target)
            status, body = bodies[target]
            anchor_ok = True
            if fragment and body:
                ids = _Ids()
                ids.feed(body)
                anchor_ok = urllib.parse.unquote(fragment) in ids.ids
            if status != 200 or not anchor_ok:
                broken += 1
                what = f"HTTP {status}" if status != 200 else f"no anchor #{fragment}"
                problems.append(f"{page}: broken link {url[len(base) :]} ({what})")
        problems += [f"request to another host: {url}" for url in sorted(outside)]
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return {
        "pages": len(pages),
        "images": len(images),
        "links": len(links),
        "broken_links": broken,
        "equations": equations,
        "outside_requests": len(outside),
        "problems": problems,
        "screenshots": [str(screenshots / name) for name in SCREENSHOTS.values()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "outputs" / "book")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "outputs" / "book-screenshots")
    parser.add_argument(
        "--require-browser",
        action="store_true",
        help="exit 2 (instead of 0) when headless Chromium is not installed",
    )
    args = parser.parse_args(argv)
    if find_browser() is None:
        print(f"book-check SKIPPED: headless Chromium is not installed ({INSTALL})")
        return 2 if args.require_browser else 0
    start = time.time()
    result = check(args.site, args.screenshots)
    print("\n".join(result["problems"]))
    print(
        f"book-check: {result['pages']} pages, {result['images']} images, {result['links']} "
        f"internal links ({result['broken_links']} broken), {result['equations']} equations "
        f"typeset, {result['outside_requests']} requests to other hosts, "
        f"{len(result['problems'])} problems ({time.time() - start:.0f} s)"
    )
    print("screenshots:", ", ".join(result["screenshots"]))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
