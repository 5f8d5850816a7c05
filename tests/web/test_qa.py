"""The QA console at ``/qa``: each role sees what the API lets it see, and no more."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from playwright.async_api import Page, Request, expect

from tests.conftest import add_user
from tests.web.conftest import (
    PASSWORD,
    Client,
    NewPage,
    Serve,
    bot_call,
    desk_call,
    js_errors,
    url,
    wait_until,
)


async def sign_in(page: Page, client: Client, email: str, path: str = "/qa") -> None:
    await page.goto(url(client, path))
    form = page.get_by_role("region", name="Sign in")
    await form.get_by_label("Email").fill(email)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Sign in").click()


def rows(page: Page) -> Any:
    return page.locator("#recordings tbody tr")


async def audited(client: Client, token: str, **query: str) -> list[dict[str, Any]]:
    resp = await client.get(
        "/v1/audit", params={"limit": "1000", **query}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def test_a_supervisor_finds_plays_seeks_annotates_and_deletes_a_recording(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    ana = await add_user(client, "ana@example.com", "agent", ("desk",))
    ben = await add_user(client, "ben@example.com", "agent", ("desk",))
    admin = await add_user(client, "ada@example.com", "admin")
    await add_user(client, "sam@example.com", "supervisor")
    anas = await desk_call(client, new_caller, ana, "+15557000001")
    await desk_call(client, new_caller, ben, "+15557000002")
    await asyncio.gather(*(bot_call(client, new_caller, f"+1555710000{i}") for i in range(3)))

    page = await new_page()
    await sign_in(page, client, "sam@example.com")
    await expect(page.get_by_text("Signed in as Sam (Supervisor)")).to_be_visible()
    await expect(rows(page)).to_have_count(5)

    # Filters: agent, caller, date.
    await page.get_by_label("Agent").select_option(label="Ana (ana@example.com)")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("+15557000001")
    await page.get_by_role("button", name="Clear filters").click()
    await expect(rows(page)).to_have_count(5)
    await page.get_by_label("Caller").fill("+15557100001")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows(page)).to_have_count(1)
    await page.get_by_role("button", name="Clear filters").click()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    await page.get_by_label("To date").fill(yesterday)
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.get_by_text("No recordings match.")).to_be_visible()
    await page.get_by_label("To date").fill(datetime.now(UTC).date().isoformat())
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows(page)).to_have_count(5)

    # Open Ana's recording.
    await page.get_by_role("link", name=anas).click()
    await expect(page.get_by_role("heading", name=f"Recording {anas}")).to_be_visible()
    await expect(page.locator("#facts")).to_contain_text("Ana")
    await expect(page.locator("#consent")).to_contain_text("granted, by pressing 1")
    await expect(page.locator("#consent")).to_contain_text("Consent menu")
    await expect(page.locator("#trace")).to_contain_text("Outcome: recorded.")
    # No transcript (or not yet: the transcription worker may still be on it), or one.
    await expect(page.locator("#transcript")).to_have_text(
        re.compile(r"^(No transcript\.|No transcript: .+|Machine transcript.+)$")
    )
    canvas = page.get_by_role("img", name=re.compile(r"^Waveform of .*caller channel peak"))
    await expect(canvas).to_be_visible()
    await expect(page.locator("#player-note")).to_contain_text("Range requests")

    # Play: the element reaches "playing" and its time advances.
    player = page.locator("#player")
    playing = player.evaluate(
        "a => new Promise(r => {"
        " a.addEventListener('playing', () => r(true), {once: true}); a.play(); })"
    )
    assert await asyncio.wait_for(playing, 10)
    t1 = await player.evaluate("a => a.currentTime")
    await asyncio.sleep(0.4)
    t2 = await player.evaluate("a => a.currentTime")
    assert t2 > t1
    await player.evaluate("a => a.pause()")
    # Seek by clicking the waveform at 3/4 of its width.
    box = await canvas.bounding_box()
    assert box is not None
    await player.evaluate(
        "a => { window.seekedTo = null;"
        " a.addEventListener('seeked', () => { window.seekedTo = a.currentTime; }, {once: true}); }"
    )
    await canvas.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    # (Polling with page.wait_for_function would need 'unsafe-eval', which the pages' CSP refuses.)
    await wait_until(partial(page.evaluate, "window.seekedTo !== null"), what="the seek")
    position = await page.evaluate("window.seekedTo")
    duration = await player.evaluate("a => a.duration")
    assert abs(position - 0.75 * duration) < 0.1 * duration
    # The audio came from the API, by Range requests with the token (each one audited).
    ranges = [
        e["detail"]["range"]
        for e in await audited(client, admin, action="recordings.audio", object_id=anas)
    ]
    assert any(re.fullmatch(r"bytes=0-\d*", r) for r in ranges), ranges

    # QA: a note, a score, tags.
    await page.get_by_label("Note").fill("Good greeting; offered the refund at once.")
    await page.get_by_label("Score (0 to 100)").fill("85")
    await page.get_by_label("Tags").fill("refund, greeting")
    await page.get_by_role("button", name="Save QA").click()
    await expect(page.locator("#notice")).to_have_text("Saved.")
    await expect(page.locator("#notes")).to_contain_text(
        "Good greeting; offered the refund at once."
    )
    await expect(page.locator("#notes")).to_contain_text("by you")
    rec = await (
        await client.get(f"/v1/recordings/{anas}", headers={"Authorization": f"Bearer {admin}"})
    ).json()
    assert rec["score"] == 85
    assert rec["tags"] == ["greeting", "refund"]
    assert [n["text"] for n in rec["notes"]] == ["Good greeting; offered the refund at once."]

    # Delete, with a confirmation: Cancel keeps it, Delete removes it.
    await page.get_by_role("button", name="Delete recording").click()
    dialog = page.get_by_role("dialog", name=f"Delete recording {anas}?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert (
        await client.get(f"/v1/recordings/{anas}", headers={"Authorization": f"Bearer {admin}"})
    ).status == 200
    await page.get_by_role("button", name="Delete recording").click()
    await dialog.get_by_role("button", name="Delete recording").click()
    await expect(page.locator("#notice")).to_have_text(f"Recording {anas} was deleted.")
    await expect(rows(page)).to_have_count(4)
    assert (
        await client.get(f"/v1/recordings/{anas}", headers={"Authorization": f"Bearer {admin}"})
    ).status == 404
    assert js_errors(page) == []


async def test_paging_through_the_recordings(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    await add_user(client, "sam@example.com", "supervisor")
    ids = await asyncio.gather(*(bot_call(client, new_caller, f"+1555720000{i}") for i in range(5)))
    page = await new_page()
    await sign_in(page, client, "sam@example.com", "/qa?per_page=2")
    seen: list[str] = []
    for number in (1, 2, 3):
        await expect(page.locator("#page-number")).to_have_text(f"Page {number}")
        await expect(rows(page)).to_have_count(2 if number < 3 else 1)
        seen += await page.locator("#recordings tbody tr td:first-child").all_text_contents()
        if number < 3:
            await page.get_by_role("button", name="Next page").click()
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    assert sorted(seen) == sorted(ids)
    await page.get_by_role("button", name="Previous page").click()
    await expect(page.locator("#page-number")).to_have_text("Page 2")
    await expect(rows(page)).to_have_count(2)


async def test_an_agent_sees_only_their_own_recordings(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    ana = await add_user(client, "ana@example.com", "agent", ("desk",))
    ben = await add_user(client, "ben@example.com", "agent", ("desk",))
    anas = await desk_call(client, new_caller, ana, "+15557000001")
    bens = await desk_call(client, new_caller, ben, "+15557000002")
    await bot_call(client, new_caller, "+15557100001")

    page = await new_page()
    await sign_in(page, client, "ana@example.com")
    await expect(page.get_by_text("Signed in as Ana (Agent)")).to_be_visible()
    await expect(rows(page)).to_have_count(1)
    await expect(page.get_by_role("link", name=anas)).to_be_visible()
    await expect(page.get_by_label("Agent")).to_be_hidden()
    await expect(page.locator("#list-scope")).to_contain_text("calls you answered")

    await page.get_by_role("link", name=anas).click()
    await expect(page.locator("#trace")).to_contain_text("Outcome: recorded.")
    await expect(page.get_by_role("button", name="Save QA")).to_be_hidden()
    await expect(page.get_by_role("button", name="Delete recording")).to_be_hidden()
    await expect(
        page.get_by_text("Notes, scores and tags are written by Supervisors and Admins.")
    ).to_be_visible()

    # Another agent's recording, even by its id, is not there for Ana.
    await page.goto(url(client, f"/qa#recording={bens}"))
    await expect(page.get_by_role("alert")).to_have_text(
        f"There is no recording {bens} that you may see."
    )
    await expect(page.locator("#player")).not_to_have_attribute("src", re.compile("."))


async def test_an_owner_sees_a_plain_statement_and_no_call_data(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    admin = await add_user(client, "ada@example.com", "admin")
    await add_user(client, "olga@example.com", "owner")
    await bot_call(client, new_caller, "+15557100001")
    page = await new_page()
    requested: list[str] = []

    def track(request: Request) -> None:
        requested.append(request.url)

    page.on("request", track)
    await sign_in(page, client, "olga@example.com")
    owner_box = page.get_by_role("region", name="No access to call data")
    await expect(owner_box).to_be_visible()
    await expect(owner_box).to_contain_text(
        "Owners manage users and billing and have no access to call data"
    )
    await expect(page.locator("#recordings")).to_be_hidden()
    await page.goto(url(client, "/qa#recording=r_0000000000000000"))
    await expect(owner_box).to_be_visible()
    await asyncio.sleep(0.3)
    call_data = [u for u in requested if re.search(r"/v1/(recordings|calls|analytics)", u)]
    assert call_data == []
    # ...and so the API refused nothing either: the page never asked.
    owner_id = (await audited(client, admin, action="auth.login"))[-1]["actor_id"]
    entries = await audited(client, admin, actor_id=owner_id)
    assert {e["action"] for e in entries} == {"auth.login"}  # add_user's and the page's


async def test_a_transcript_line_plays_from_its_time(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    """The transcript's lines, with their times, seek the player (the API's answer is faked
    at the HTTP boundary: the test's recordings hold noise, which has no words)."""
    client = await serve()
    await add_user(client, "sam@example.com", "supervisor")
    recording = await bot_call(client, new_caller, "+15557100001")
    transcript = {
        "recording_id": recording,
        "engine": "pocketsphinx",
        "model": "en-us",
        "language": "en",
        "audio_s": 0.4,
        "created_at": "2026-01-01T00:00:00.000Z",
        "segments": [
            {"channel": "caller", "start_s": 0.05, "end_s": 0.15, "text": "hello"},
            {"channel": "agent", "start_s": 0.25, "end_s": 0.35, "text": "good day"},
        ],
    }
    page = await new_page()
    await page.route(
        f"**/v1/recordings/{recording}/transcript",
        lambda route: route.fulfill(json=transcript),
    )
    await sign_in(page, client, "sam@example.com")
    await page.get_by_role("link", name=recording).click()
    lines = page.locator("#transcript li")
    await expect(lines).to_have_text(["0:00.1 Caller: hello", "0:00.3 Agent: good day"])
    await expect(page.locator("#transcript")).to_contain_text("pocketsphinx, en-us, en")
    await expect(page.locator("#player-note")).to_contain_text("Range requests")
    await page.locator("#player").evaluate(
        "a => { window.seekedTo = null;"
        " a.addEventListener('seeked', () => { window.seekedTo = a.currentTime; }, {once: true}); }"
    )
    await page.get_by_role("button", name="Play from 0:00.3: good day").click()
    await wait_until(partial(page.evaluate, "window.seekedTo !== null"), what="the seek")
    assert abs(await page.evaluate("window.seekedTo") - 0.25) < 0.02
