"""Browser tabs that record every request, and what a test asks of a rendered page."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import zxingcpp
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Locator, Page, Request

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 10_000  # DOM conditions, not sleeps: this is only the deadline


@dataclass
class Tab:
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Requests that went anywhere but strom (inline `data:` images are no request)."""
        return [url for url in self.requests
                if not url.startswith(self.origin + "/") and not url.startswith("data:")]

    async def goto(self, path: str) -> None:
        answer = await self.page.goto(self.origin + path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)

    async def text(self, selector: str) -> str:
        return (await self.page.locator(selector).inner_text()).strip()

    async def decode_qr(self, locator: Locator) -> str:
        """Screenshot the element and read it as a camera would (zxing-cpp)."""
        png = await locator.screenshot()
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert len(found) == 1, f"expected one QR code, found {len(found)}"
        return found[0].text

    async def overflow_px(self) -> int:
        """How far the page is wider than the window (a phone must not scroll sideways)."""
        return await self.page.evaluate(
            "document.documentElement.scrollWidth - window.innerWidth")


class Tabs:
    """Opens tabs on one strom; each tab has its own context (viewport, JavaScript on/off)."""

    def __init__(self, browser: Browser, origin: str) -> None:
        self._browser = browser
        self._origin = origin
        self._contexts: list[BrowserContext] = []

    async def open(self, viewport: dict[str, int] = DESKTOP, *, javascript: bool = True) -> Tab:
        context = await self._browser.new_context(viewport=viewport,  # type: ignore[arg-type]
                                                  java_script_enabled=javascript,
                                                  device_scale_factor=1)
        context.set_default_timeout(WAIT_MS)
        self._contexts.append(context)
        tab = Tab(await context.new_page(), self._origin)

        def record(request: Request) -> None:
            tab.requests.append(request.url)

        context.on("request", record)
        return tab

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()
