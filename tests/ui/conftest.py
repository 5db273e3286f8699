"""Browser tests of the web pages: Debian's chromium driven by Playwright (its own browser
download is not possible here: scripts/chromium-up installs chromium and axe-core), one browser
per module, screenshots of every page kept under the module's tmp directory for review."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".test-tools" / "node_modules" / "axe-core" / "axe.min.js"
#: As root, without a sandbox; no background connections (the machine's network is closed).
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/chromium-up (scripts/test does)"
    assert AXE.exists(), "axe-core is missing: run scripts/chromium-up (scripts/test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Browsing:
    """One browser context as a person uses it (CSP enforced), and a second one for axe-core,
    which must inject its script (``bypass_csp``: the pages' own policy forbids any script)."""

    context: BrowserContext
    audit_context: BrowserContext
    shots: Path
    dialogs: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        return page

    def screenshot(self, page: Page, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self, url: str, exclude: tuple[str, ...] = ()) -> list[str]:
        """axe-core run in the page (with this browser's cookies): the serious and critical
        violations, as "rule: target" strings; ``exclude``: selectors left out."""
        self.audit_context.clear_cookies()
        self.audit_context.add_cookies(self.context.cookies())  # type: ignore[arg-type]
        page = self.audit_context.new_page()
        try:
            page.goto(url)
            page.add_script_tag(path=str(AXE))
            found = page.evaluate(
                """async (exclude) => (await axe.run({include: [['html']], exclude: exclude.map(s => [s])},
                        {resultTypes: ['violations']})).violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))""",
                list(exclude),
            )
        finally:
            page.close()
        return list(found)


@pytest.fixture(scope="module")
def browsing(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsing]:
    shots = tmp_path_factory.mktemp("screenshots")
    # The servers use the tests' own CA, which the browser does not know.
    context = browser.new_context(ignore_https_errors=True)
    audit = browser.new_context(ignore_https_errors=True, bypass_csp=True)
    try:
        yield Browsing(context, audit, shots)
    finally:
        print(f"screenshots: {shots}")
        context.close()
        audit.close()
