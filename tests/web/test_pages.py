"""Every page at a desktop and a phone width: screenshots, WCAG 2.1 AA (axe-core), no overflow.

The screenshots go to ``artifacts/screenshots/<page>-<state>-<width>.png``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from playwright.async_api import Page, expect

from tests.conftest import add_user
from tests.web.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    NewPage,
    Serve,
    bot_call,
    desk_call,
    js_errors,
    screenshot,
    url,
)
from tests.web.test_qa import sign_in

try:
    AXE = (resources.files("axe_playwright_python") / "axe.min.js").read_text()
except ModuleNotFoundError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "the accessibility checks need axe-core, shipped in the 'axe-playwright-python' "
        "package: .venv/bin/pip install axe-playwright-python"
    ) from exc

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it is now (contrast included)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE)
    result = await page.evaluate(
        "tags => axe.run(document,"
        " {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_AA,
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def explain(violations: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": v["id"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:5],
                "why": [n["failureSummary"] for n in v["nodes"]][:2],
            }
            for v in violations
        ],
        indent=1,
    )


async def check_both_widths(page: Page, name: str) -> None:
    """At each width: a screenshot, no sideways scrolling, and no WCAG 2.1 AA violation."""
    for size in (DESKTOP, PHONE):
        await page.set_viewport_size(size)  # type: ignore[arg-type]
        await page.wait_for_timeout(150)  # let layout and canvases settle
        await screenshot(page, name)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            wide = await page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
                    .slice(0, 8)
                    .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' '
                         + Math.round(e.getBoundingClientRect().right))"""
            )
            raise AssertionError(
                f"{name} scrolls sideways by {overflow} px at {size['width']} px: {wide}"
            )
        violations = await axe_violations(page)
        assert violations == [], f"{name} at {size['width']} px:\n{explain(violations)}"
    await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]


async def test_softphone_pages(serve: Serve, new_page: NewPage) -> None:
    client = await serve()
    await add_user(client, "ana@example.com", "agent", ("desk",))
    caller = await new_page("caller")
    await caller.goto(url(client))
    await check_both_widths(caller, "softphone-idle")

    # A call in progress, on a recorded line.
    await caller.get_by_role("button", name="Call", exact=True).click()
    await expect(caller.locator("#call-log")).to_contain_text("prompt start menu (consent)")
    await caller.get_by_role("button", name="1", exact=True).click()
    await expect(caller.get_by_role("img", name="Recording: on")).to_be_visible()
    await caller.locator("#call-details summary").click()
    await check_both_widths(caller, "softphone-call")
    await caller.get_by_role("button", name="Hang up").click()
    await expect(caller.get_by_role("status")).to_have_text("Call ended: you hung up.")

    # An agent with an incoming call.
    agent = await new_page("agent")
    await agent.goto(url(client, "/?mode=agent"))
    await check_both_widths(agent, "softphone-agent-signin")
    form = agent.get_by_role("region", name="Take calls")
    await form.get_by_label("Email").fill("ana@example.com")
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Sign in").click()
    await agent.get_by_role("switch", name="Ready").click()
    await expect(agent.get_by_role("status")).to_have_text("Ready: waiting for a call.")
    await caller.get_by_label("Number", exact=True).fill("+15550102")
    await caller.get_by_role("button", name="Call", exact=True).click()
    await expect(caller.locator("#call-log")).to_contain_text("prompt start menu (consent)")
    await caller.get_by_role("button", name="1", exact=True).click()
    await expect(agent.get_by_role("group", name="Incoming call")).to_be_visible()
    await check_both_widths(agent, "softphone-agent-offer")
    await agent.get_by_role("button", name="Reject").click()
    await caller.get_by_role("button", name="Hang up").click()
    assert js_errors(caller) == []
    assert js_errors(agent) == []


async def test_qa_console_pages(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    ana = await add_user(client, "ana@example.com", "agent", ("desk",))
    await add_user(client, "sam@example.com", "supervisor")
    await add_user(client, "olga@example.com", "owner")
    recording = await desk_call(client, new_caller, ana, "+15557000001")
    await bot_call(client, new_caller, "+15557100001")
    page = await new_page()
    await page.goto(url(client, "/qa"))
    await check_both_widths(page, "qa-signin")
    await sign_in(page, client, "sam@example.com")
    await expect(page.locator("#recordings tbody tr")).to_have_count(2)
    await check_both_widths(page, "qa-list")
    await page.get_by_role("link", name=recording).click()
    await expect(page.get_by_role("img", name=re.compile("^Waveform of"))).to_be_visible()
    await page.get_by_label("Note").fill("Clear and polite.")
    await page.get_by_role("button", name="Save QA").click()
    await expect(page.locator("#notice")).to_have_text("Saved.")
    await check_both_widths(page, "qa-recording")

    owner = await new_page()
    await sign_in(owner, client, "olga@example.com")
    await expect(owner.get_by_role("region", name="No access to call data")).to_be_visible()
    await check_both_widths(owner, "qa-owner")
    assert js_errors(page) == []
    assert js_errors(owner) == []


async def test_admin_dashboard_pages(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    await add_user(client, "ada@example.com", "admin")
    await add_user(client, "olga@example.com", "owner")
    await add_user(client, "ana@example.com", "agent", ("desk",))
    await bot_call(client, new_caller, "+15557300001")
    page = await new_page()
    await sign_in(page, client, "ada@example.com", "/admin")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    # A refused change, so the verdict is on the page too.
    sales = page.locator('article[data-number="+15550101"]')
    await sales.get_by_role("switch", name="AI transcription").click()
    await sales.get_by_role("button", name="Check and save").click()
    await expect(sales.locator(".verdict")).to_contain_text("Not saved")
    erase = page.get_by_role("form", name="Erasure")
    await erase.get_by_label("Caller's number", exact=True).fill("+15557300001")
    await erase.get_by_role("button", name="Erase…").click()
    dialog = page.get_by_role("dialog", name="Erase caller +15557300001?")
    await expect(dialog).to_be_visible()
    await screenshot(page, "admin-confirm", full_page=False)  # the modal covers the viewport
    await dialog.get_by_role("button", name="Erase for good").click()
    await expect(page.locator("#receipts li")).to_have_count(1)
    await check_both_widths(page, "admin-admin")

    owner = await new_page()
    await sign_in(owner, client, "olga@example.com", "/admin")
    await expect(owner.locator("#billing-facts")).to_contain_text("Seats")
    await check_both_widths(owner, "admin-owner")
    assert js_errors(page) == []
    assert js_errors(owner) == []


async def test_keyboard_focus_is_always_visible(serve: Serve, new_page: NewPage) -> None:
    """Tab through each page: every stop is visible and drawn with a focus ring."""
    client = await serve()
    page = await new_page()
    for path in ("/", "/qa", "/admin"):
        await page.goto(url(client, path))
        await page.wait_for_load_state("networkidle")
        stops = set()
        for _ in range(25):
            await page.keyboard.press("Tab")
            info = await page.evaluate(
                """() => {
                    const e = document.activeElement;
                    if (!e || e === document.body) return null;
                    const s = getComputedStyle(e);
                    const r = e.getBoundingClientRect();
                    return {id: e.id || e.textContent.trim().slice(0, 20),
                            outline: s.outlineStyle, width: parseFloat(s.outlineWidth),
                            visible: r.width > 0 && r.height > 0};
                }"""
            )
            if info is None:
                continue
            stops.add(info["id"])
            assert info["visible"], f"{path}: focus on an invisible element {info}"
            assert info["outline"] != "none", f"{path}: no focus ring {info}"
            assert info["width"] >= 2, f"{path}: a focus ring under 2 px {info}"
        assert len(stops) >= 3, f"{path}: only {stops} reachable by Tab"


async def test_the_resampler_low_passes_before_decimating(serve: Serve, new_page: NewPage) -> None:
    """resample.js, run in Chromium: flat in the telephone band, > 70 dB down above it."""
    import numpy as np

    client = await serve()
    page = await new_page()
    await page.goto(url(client))

    async def gain_db(from_rate: int, to_rate: int, hz: float) -> float:
        out = await page.evaluate(
            """async ([from, to, hz]) => {
                const {Resampler} = await import('/static/resample.js');
                const r = new Resampler(from, to);
                const x = new Float32Array(from);
                for (let i = 0; i < x.length; i++) {
                    x[i] = 0.5 * Math.sin(2 * Math.PI * hz * i / from);
                }
                const parts = [];
                for (let i = 0; i < x.length; i += 128) {
                    parts.push(...r.process(x.subarray(i, i + 128)));
                }
                return parts;
            }""",
            [from_rate, to_rate, hz],
        )
        y = np.asarray(out[len(out) // 4 : -len(out) // 4])
        return float(20 * np.log10(np.sqrt(np.mean(y**2)) / (0.5 / np.sqrt(2)) + 1e-12))

    for from_rate, to_rate in ((48000, 8000), (44100, 8000), (48000, 16000)):
        top = 0.85 * to_rate / 2
        for hz in (300.0, 1000.0, top):
            assert abs(await gain_db(from_rate, to_rate, hz)) < 0.05, (from_rate, to_rate, hz)
        for hz in (to_rate / 2 + 100, to_rate * 0.75, to_rate * 1.5):
            assert await gain_db(from_rate, to_rate, hz) < -70, (from_rate, to_rate, hz)
    # Upsampling for the speaker: a 1 kHz tone comes out whole, without images above 4 kHz.
    out = await page.evaluate(
        """async () => {
            const {Resampler} = await import('/static/resample.js');
            const r = new Resampler(8000, 48000);
            const x = new Float32Array(8000);
            for (let i = 0; i < x.length; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * 1000 * i / 8000);
            return Array.from(r.process(x));
        }"""
    )
    y = np.asarray(out[4800:-4800])
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 48000)
    images = spectrum[freqs > 4000].sum() / spectrum.sum()
    assert 10 * np.log10(images) < -70
