"""What every browser test needs around a page: logging in, the checks every page must pass,
screenshots and downloads. Every browser test uses these; none keeps a copy of its own.

`watch(page)` starts listening; from then on `page_checked(page)` fails when the page is wider
than the window, when any page loaded since the last check answered with a server error
(HTTP 5xx, or Django's "Server Error" / a traceback on the page), when the browser refused
something under the Content-Security-Policy, or when a script threw.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# var/ is ignored by git; each test has a folder there, holding its last run's screenshots.
SCREENSHOTS = ROOT / "var" / "screenshots"
ADMIN_PASSWORD = "password"  # pytest-django's admin_user
SERVER_ERROR_TEXTS = ("Server Error", "Traceback")
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`Refused to (securitypolicyviolation) ${event.violatedDirective} ${event.blockedURI}`);
});
"""


@dataclass
class Heard:
    """What the browser reported since the last `page_checked`."""

    server_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.server_errors.clear()
        self.refused.clear()
        self.script_errors.clear()


def watch(page):
    """Listen to `page` for server errors, policy violations and script errors; returns it."""
    if getattr(page, "giftdesk_heard", None) is not None:
        return page
    heard = page.giftdesk_heard = Heard()

    def on_response(response):
        # Navigations of the page itself (links, forms, redirects, reloads), not its images or
        # scripts; a navigation that ends in a download counts too.
        request = response.request
        if request.is_navigation_request() and request.frame == page.main_frame and response.status >= 500:
            heard.server_errors.append(f"{request.method} {response.url} answered {response.status}")

    def on_console(message):
        # Chromium: "Refused to load/apply ..." and "... violates the following Content
        # Security Policy directive ..."; the listener above reports each violation event too.
        if "Refused to" in message.text or "Content Security Policy" in message.text:
            heard.refused.append(f"{page.url}: {message.text}")

    page.add_init_script(REPORT_VIOLATIONS)
    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: heard.script_errors.append(f"{page.url}: {error}"))
    return page


def log_in(page, live_server, user, password: str = ADMIN_PASSWORD) -> None:
    """Log in through the admin's login form; the page ends on the start page."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def arrived(page, selector: str, timeout: float | None = None) -> None:
    """Wait for `selector`; when it does not come, fail with what the page says instead (its
    errors and messages), not only "timeout"."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector(selector, timeout=timeout)
    except PlaywrightTimeout:
        said = page.evaluate("""() => Array.from(document.querySelectorAll(
            ".errornote, .errorlist, .messagelist li, #content h1, #content h2"))
            .map((element) => element.innerText.trim()).filter(Boolean)""")
        raise AssertionError(f"{selector} never appeared on {page.url}; the page says:\n  "
                             + "\n  ".join(said or ["(no heading, error or message)"])) from None


def page_checked(page) -> None:
    """Fail unless the page, as it stands, is one a person can use.

    - no server error: no navigation since the last check answered HTTP 5xx, and the page
      does not show Django's "Server Error" page or a traceback;
    - not wider than the window: nothing to scroll sideways for
      (document.documentElement.scrollWidth <= window.innerWidth);
    - no Content-Security-Policy violation and no uncaught script error since the last check.
    """
    heard: Heard | None = getattr(page, "giftdesk_heard", None)
    assert heard is not None, "call watch(page) before the first page_checked(page)"
    state = page_state(page)
    problems = list(heard.server_errors)
    problems += [f"{state['url']} shows {shown!r}" for shown in SERVER_ERROR_TEXTS if shown in state["text"]]
    if state["width"] > state["window"]:
        problems.append(f"{state['url']} is {state['width']} px wide in a {state['window']} px window; "
                        f"past the right edge: {', '.join(state['wide']) or 'no single element (margins?)'}")
    problems += heard.refused + heard.script_errors
    heard.clear()
    assert not problems, "\n".join(problems)


# One look at the page, in one script run, so a page that reloads itself (a batch being sent)
# cannot change between the parts. The elements reaching past the window's right edge,
# outermost first, say where to look.
PAGE_STATE = """() => {
    const limit = window.innerWidth, wide = [];
    for (const element of document.querySelectorAll("body *")) {
        const box = element.getBoundingClientRect();
        if (box.right > limit + 1 && !wide.some((outer) => outer.element.contains(element))) {
            const classes = typeof element.className === "string" && element.className.trim()
                ? "." + element.className.trim().split(/\\s+/).join(".") : "";
            wide.push({element, text: `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}`
                + `${classes} (${Math.round(box.right)} px)`});
        }
    }
    return {url: location.href, text: document.body ? document.body.innerText : "",
            width: document.documentElement.scrollWidth, window: limit,
            wide: wide.slice(0, 5).map((entry) => entry.text)};
}"""


def page_state(page) -> dict:
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(3):
        page.wait_for_load_state("load")
        try:
            return page.evaluate(PAGE_STATE)
        except PlaywrightError as exc:  # the page navigated (reloaded itself) meanwhile
            if attempt == 2 or "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
    raise AssertionError("unreachable")


def shot(page, name: str, folder: Path = SCREENSHOTS) -> Path:
    """`page_checked`, then the whole page saved as <folder>/<name>.png; saved when the check
    fails too, to show what failed."""
    path = folder / f"{name}.png"
    try:
        page_checked(page)
    finally:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
    return path


class Screenshots:
    """Full-page screenshots of one test's steps, numbered in the order taken:
    var/screenshots/<name>/<name>-01-<step>.png, ...

    They are taken into a folder of this run's own and moved into place when the test ends
    (passed or failed: `request.addfinalizer`), replacing the previous run's; two runs at
    the same time (a shared working tree) never mix their screenshots.
    """

    def __init__(self, name: str, request) -> None:
        self.name = name
        self.final = SCREENSHOTS / name
        self.directory = SCREENSHOTS / f".{name}-{os.getpid()}-{time.monotonic_ns()}"
        self.directory.mkdir(parents=True)
        self.taken: list[Path] = []
        request.addfinalizer(self.publish)

    def take(self, page, step: str) -> Path:
        """Save the page; returns where the file will be once published."""
        filename = f"{self.name}-{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(self.directory / filename), full_page=True)
        self.taken.append(self.final / filename)
        return self.final / filename

    def publish(self) -> None:
        shutil.rmtree(self.final, ignore_errors=True)
        try:
            self.directory.rename(self.final)
        except OSError:  # another run published in between: the later run's folder stays
            shutil.rmtree(self.final, ignore_errors=True)
            self.directory.rename(self.final)


@dataclass(frozen=True)
class Download:
    filename: str  # as the browser would save it
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8-sig")  # our CSVs start with a BOM, for Excel


def downloaded(page, selector: str, timeout: float = 15_000) -> Download:
    """Click `selector` and return the file the browser downloads."""
    with page.expect_download(timeout=timeout) as started:
        page.click(selector)
    download = started.value
    failure = download.failure()
    assert failure is None, f"the download from {download.url[:120]} failed: {failure}"
    return Download(download.suggested_filename, Path(download.path()).read_bytes())


def import_form_filled(page, account, path: Path, product: str = "The Global Gift Card") -> None:
    """On the import page: choose the file at `path`, the account, and the first of its
    products whose label starts with `product` (a script refills that list once the account
    is chosen: wait for it)."""
    page.set_input_files("#id_import_file", str(path))
    page.select_option("#id_account", label=account.name)
    page.wait_for_function("""(product) => [...document.querySelectorAll("#id_default_product option")]
                              .some((option) => option.text.startsWith(product))""", arg=product)
    page.select_option("#id_default_product", label=next(
        label for label in page.locator("#id_default_product option").all_inner_texts()
        if label.startswith(product)))
