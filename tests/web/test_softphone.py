"""The softphone at ``/``: real calls from Chromium, its fake microphone and the recordings."""

from __future__ import annotations

import asyncio
import re
from functools import partial

from playwright.async_api import Page, expect

from tests.conftest import add_user
from tests.web.conftest import (
    PASSWORD,
    Client,
    Mic,
    NewPage,
    Serve,
    TcpProxy,
    correlation_by_chunk,
    js_errors,
    matches,
    recording_audio,
    url,
    wait_until,
)


async def frames_received(page: Page) -> int:
    return int(await page.locator("#d-received").text_content() or 0)


async def recordings(client: Client, token: str) -> list[dict[str, object]]:
    resp = await client.get("/v1/recordings", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    items: list[dict[str, object]] = (await resp.json())["items"]
    return items


async def test_caller_presses_1_talks_to_a_bot_and_the_recording_holds_the_microphone(
    serve: Serve, new_page: NewPage, mics: dict[str, Mic]
) -> None:
    client = await serve()
    supervisor = await add_user(client, "sam@example.com", "supervisor")
    page = await new_page("caller")
    await page.goto(url(client))
    status = page.get_by_role("status")
    number = page.get_by_label("Number", exact=True)
    await expect(number).to_have_value("+15550100")
    # The demo numbers are offered with the field.
    options = page.locator("#demo-numbers option")
    assert "+15550102" in await options.evaluate_all("os => os.map(o => o.value)")

    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(status).to_have_text("Call answered by +15550100. Listen to the menu.")
    # Both indicators are visible from the start of the call, with their state in their name.
    await expect(page.get_by_role("img", name="Recording: off")).to_be_visible()
    await expect(page.get_by_role("img", name="AI transcription: off")).to_be_visible()
    # The prompts' frames arrive.
    await wait_until(partial(_more_than, page, 5), what="audio frames from the server")
    await expect(page.locator("#call-log")).to_contain_text("prompt start menu (consent)")

    await page.get_by_role("button", name="1", exact=True).click()
    await expect(status).to_have_text(re.compile(r"^Connected to support bot \d+\.$"))
    await expect(page.get_by_role("img", name="Recording: on")).to_be_visible()
    await expect(page.get_by_role("img", name="AI transcription: on")).to_be_visible()
    await asyncio.sleep(2.5)  # the fake microphone talks
    await page.get_by_role("button", name="Hang up").click()
    await expect(status).to_have_text("Call ended: you hung up.")
    await expect(page.get_by_role("img", name="Recording: off")).to_be_visible()
    assert await page.get_by_role("button", name="1", exact=True).is_disabled()

    # Every frame the worklet cut was a well-formed 20 ms frame, sent at real-time pace.
    calls = await client.get("/v1/calls", headers={"Authorization": f"Bearer {supervisor}"})
    [call] = (await calls.json())["items"]
    assert call["stats"]["frames_malformed"] == 0
    assert call["stats"]["frames_received"] >= 100
    assert call["stats"]["frames_dropped"] == 0

    items = await recordings(client, supervisor)
    assert len(items) == 1
    rec = items[0]
    assert rec["number"] == "+15550100"
    assert rec["contact"] == "+15557654321"
    rate, caller, _agent = await recording_audio(client, supervisor, str(rec["id"]))
    assert rate == 8000
    assert len(caller) / rate >= 2.0
    scores = correlation_by_chunk(caller, mics["caller"].pcm, rate)
    assert matches(scores, seconds=2.0), scores
    # ...and not by chance: the other microphone's signal does not match.
    assert max(correlation_by_chunk(caller, mics["agent"].pcm, rate)) < 0.4
    assert js_errors(page) == []


async def _more_than(page: Page, n: int) -> bool:
    return await frames_received(page) > n


async def test_caller_presses_2_by_keyboard_alone_and_nothing_is_recorded(
    serve: Serve, new_page: NewPage
) -> None:
    client = await serve()
    supervisor = await add_user(client, "sam@example.com", "supervisor")
    page = await new_page("caller")
    await page.goto(url(client))
    # Keyboard only: Tab to the Call button, Enter to call.
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "call":
            break
    else:
        raise AssertionError("the Call button is not reachable with Tab")
    await page.keyboard.press("Enter")
    status = page.get_by_role("status")
    await expect(status).to_have_text("Call answered by +15550100. Listen to the menu.")
    await expect(page.locator("#call-log")).to_contain_text("prompt start menu (consent)")
    await page.keyboard.press("2")  # a digit key presses the keypad
    await expect(status).to_have_text(re.compile(r"^Connected to support bot \d+\.$"))
    await expect(page.get_by_role("img", name="Recording: off")).to_be_visible()
    await expect(page.get_by_role("img", name="AI transcription: off")).to_be_visible()
    await asyncio.sleep(1.0)
    await expect(page.get_by_role("img", name="Recording: off")).to_be_visible()
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "hangup":
            break
    else:
        raise AssertionError("the Hang up button is not reachable with Tab")
    await page.keyboard.press("Enter")
    await expect(status).to_have_text("Call ended: you hung up.")
    log = await page.locator("#call-log").text_content() or ""
    assert "pressed 2" in log
    assert "Recording: on" not in log
    assert "recording r_" not in log
    assert await recordings(client, supervisor) == []
    calls = await client.get("/v1/calls", headers={"Authorization": f"Bearer {supervisor}"})
    [call] = (await calls.json())["items"]
    assert call["recording_decision"]["consent"] == "refused"
    assert call["recording_decision"]["record"] is False


async def test_an_agent_answers_a_call_from_another_page_and_both_are_heard(
    serve: Serve, new_page: NewPage, mics: dict[str, Mic]
) -> None:
    client = await serve()
    await add_user(client, "ana@example.com", "agent", ("desk",))
    supervisor = await add_user(client, "sam@example.com", "supervisor")
    agent = await new_page("agent")
    caller = await new_page("caller")

    await agent.goto(url(client))
    await agent.get_by_label("Take calls as an agent").check()
    await agent.get_by_label("Email").fill("ana@example.com")
    await agent.get_by_label("Password").fill(PASSWORD)
    await agent.get_by_role("button", name="Sign in").click()
    await expect(agent.get_by_text("Signed in as Ana for team(s): desk.")).to_be_visible()
    ready = agent.get_by_role("switch", name="Ready")
    await expect(ready).to_have_attribute("aria-checked", "false")
    await ready.click()
    await expect(ready).to_have_attribute("aria-checked", "true")
    await expect(agent.get_by_role("status")).to_have_text("Ready: waiting for a call.")

    await caller.goto(url(client))
    await caller.get_by_role("button", name="+15550102").click()
    await expect(caller.get_by_label("Number", exact=True)).to_have_value("+15550102")
    await caller.get_by_role("button", name="Call", exact=True).click()
    await expect(caller.locator("#call-log")).to_contain_text("prompt start menu (consent)")
    await caller.get_by_role("button", name="1", exact=True).click()
    await expect(caller.get_by_role("status")).to_have_text(
        "Ringing: waiting for an agent on line recorded."
    )

    offer = agent.get_by_role("group", name="Incoming call")
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text("From +15557654321, line recorded.")
    await expect(offer).to_contain_text("This call will be recorded.")
    await offer.get_by_role("button", name="Answer").click()
    await expect(agent.get_by_role("status")).to_have_text("Connected to +15557654321.")
    await expect(caller.get_by_role("status")).to_have_text("Connected to Ana.")
    await expect(agent.get_by_role("img", name="Recording: on")).to_be_visible()
    await expect(caller.get_by_role("img", name="Recording: on")).to_be_visible()

    # Both sides hear the other: the speaker meters move and frames keep coming.
    await asyncio.sleep(2.5)
    for page in (agent, caller):
        assert await frames_received(page) > 50
        await wait_until(partial(_meter_above, page, 0.05), what="sound on the speaker")
    await agent.get_by_role("button", name="Hang up").click()
    await expect(agent.get_by_role("status")).to_have_text("Call ended: you hung up. Still ready.")
    await expect(caller.get_by_role("status")).to_have_text("Call ended: the agent hung up.")

    [rec] = await recordings(client, supervisor)
    assert rec["agent_name"] == "Ana"
    rate, left, right = await recording_audio(client, supervisor, str(rec["id"]))
    heard_caller = correlation_by_chunk(left, mics["caller"].pcm, rate)
    heard_agent = correlation_by_chunk(right, mics["agent"].pcm, rate)
    assert matches(heard_caller, seconds=2.0), heard_caller
    assert matches(heard_agent, seconds=2.0), heard_agent
    # Each channel holds its own side only.
    assert max(correlation_by_chunk(left, mics["agent"].pcm, rate)) < 0.4
    assert max(correlation_by_chunk(right, mics["caller"].pcm, rate)) < 0.4
    assert js_errors(agent) == []
    assert js_errors(caller) == []


async def _meter_above(page: Page, level: float) -> bool:
    value = await page.locator("#speaker-level").evaluate("m => m.value")
    return bool(value > level)


async def test_an_unknown_number_is_explained(serve: Serve, new_page: NewPage) -> None:
    client = await serve()
    page = await new_page()
    await page.goto(url(client))
    await page.get_by_label("Number", exact=True).fill("+15559999")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        "+15559999 is not a number of this server. "
        "Check the number; the demo numbers are listed under the Number field."
    )
    await expect(page.get_by_role("status")).to_have_text(
        "Call ended: the number could not be called."
    )
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()
    # A number that is not E.164 is caught before dialling.
    await page.get_by_label("Number", exact=True).fill("5550100")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("E.164")


async def test_a_refused_microphone_is_explained(serve: Serve, new_page: NewPage) -> None:
    client = await serve()
    await add_user(client, "ana@example.com", "agent", ("desk",))
    page = await new_page()
    # As if the person clicked "Block" on the browser's microphone prompt.
    await page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    await page.goto(url(client))
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("The microphone was refused.")
    await expect(page.get_by_role("status")).to_have_text(
        "No call: the microphone is not available."
    )
    # An agent cannot go Ready without a microphone either.
    await page.get_by_label("Take calls as an agent").check()
    await page.get_by_label("Email").fill("ana@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    ready = page.get_by_role("switch", name="Ready")
    await ready.click()
    await expect(page.get_by_role("alert")).to_contain_text("The microphone was refused.")
    await expect(ready).to_have_attribute("aria-checked", "false")


async def test_a_lost_connection_is_explained(serve: Serve, new_page: NewPage) -> None:
    client = await serve()
    proxy = TcpProxy(client.server.port or 0)
    await proxy.start()
    try:
        page = await new_page()
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text(
            "Call answered by +15550100. Listen to the menu."
        )
        proxy.cut()
        await expect(page.get_by_role("alert")).to_contain_text(
            "Lost the connection to the server (code 1006)."
        )
        await expect(page.get_by_role("status")).to_have_text(
            "Call ended: the connection was lost."
        )
        await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()
    finally:
        await proxy.close()


async def test_a_failed_agent_sign_in_is_explained(serve: Serve, new_page: NewPage) -> None:
    client = await serve()
    await add_user(client, "ana@example.com", "agent", ("desk",))
    page = await new_page()
    await page.goto(url(client, "/?mode=agent"))
    await page.get_by_label("Email").fill("ana@example.com")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "Sign-in failed: wrong e-mail or password."
    )
    await expect(page.get_by_role("switch", name="Ready")).to_be_hidden()
