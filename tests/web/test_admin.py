"""The admin dashboard at ``/admin``: numbers, users and teams, privacy requests, audit, billing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.async_api import Page, Request, expect

from tests.conftest import add_user
from tests.web.conftest import Client, NewPage, Serve, bot_call, js_errors, url
from tests.web.test_qa import audited, sign_in


def card(page: Page, number: str) -> Any:
    return page.locator(f'article[data-number="{number}"]')


async def get(client: Client, token: str, path: str) -> Any:
    resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_switching_recording_off_makes_the_next_call_unrecorded(
    serve: Serve, new_page: NewPage
) -> None:
    client = await serve()
    admin = await add_user(client, "ada@example.com", "admin")
    page = await new_page()
    await sign_in(page, client, "ada@example.com", "/admin")
    await expect(page.get_by_role("heading", name="Numbers")).to_be_visible()
    support = card(page, "+15550100")
    recording = support.get_by_role("switch", name="Recording")
    await expect(recording).to_have_attribute("aria-checked", "true")
    save = support.get_by_role("button", name="Check and save")
    await expect(save).to_be_disabled()
    await recording.click()
    await expect(recording).to_have_attribute("aria-checked", "false")
    await expect(support.get_by_text("Unsaved changes.")).to_be_visible()
    # The verdict before saving: checked, nothing saved yet.
    await support.get_by_role("button", name="Check", exact=True).click()
    await expect(support.locator(".verdict")).to_have_text(
        "Compliant. Not saved yet: use Check and save."
    )
    assert (await get(client, admin, "/v1/numbers/+15550100"))["recording"] is True
    await save.click()
    await expect(support.locator(".verdict")).to_have_text(
        "Compliant, and saved: recording off. It applies from the next call."
    )
    assert (await get(client, admin, "/v1/numbers/+15550100"))["recording"] is False

    # The next call to +15550100, from the softphone: pressing 1 records nothing.
    phone = await new_page()
    await phone.goto(url(client))
    await phone.get_by_role("button", name="Call", exact=True).click()
    await expect(phone.locator("#call-log")).to_contain_text("prompt start menu (consent)")
    await phone.get_by_role("button", name="1", exact=True).click()
    await expect(phone.get_by_role("status")).to_have_text(re.compile(r"^Connected to support bot"))
    await expect(phone.get_by_role("img", name="Recording: off")).to_be_visible()
    await phone.get_by_role("button", name="Hang up").click()
    await expect(phone.get_by_role("status")).to_have_text("Call ended: you hung up.")
    assert (await get(client, admin, "/v1/recordings"))["items"] == []
    [call] = (await get(client, admin, "/v1/calls"))["items"]
    trace = (await get(client, admin, f"/v1/calls/{call['id']}"))["recording_trace"]
    assert trace[0] == "Number +1555**00: recording is off."
    assert "Outcome: not recorded." in trace
    assert js_errors(page) == []
    assert js_errors(phone) == []


async def test_a_non_compliant_change_is_refused_with_the_verdict(
    serve: Serve, new_page: NewPage
) -> None:
    client = await serve()
    admin = await add_user(client, "ada@example.com", "admin")
    page = await new_page()
    await sign_in(page, client, "ada@example.com", "/admin")
    sales = card(page, "+15550101")
    # Choosing a flow shows that flow's own check at once.
    await sales.get_by_label("Flow").select_option("consent")
    await expect(sales.locator(".verdict")).to_contain_text("Flow consent passes its check")
    await sales.get_by_role("button", name="Revert").click()
    await expect(sales.get_by_label("Flow")).to_have_value("sales")
    # The sales flow gives no AI notice: transcription on breaks the ai_notice rule.
    await sales.get_by_role("switch", name="AI transcription").click()
    await sales.get_by_role("button", name="Check and save").click()
    verdict = sales.locator(".verdict")
    await expect(verdict).to_contain_text(
        "Not saved: with these settings the number breaks 1 rule(s)."
    )
    await expect(verdict).to_contain_text("[ai_notice]")
    await expect(verdict).to_contain_text("path: notice -> line")
    await expect(sales.get_by_text("Unsaved changes.")).to_be_visible()
    assert (await get(client, admin, "/v1/numbers/+15550101"))["transcription"] is False
    # Other switches, in place: the sample and the retention.
    await sales.get_by_role("button", name="Revert").click()
    await sales.get_by_label("Sample (% of calls recorded)").fill("50")
    await sales.get_by_label("Retention (days)").fill("30")
    await sales.get_by_role("button", name="Check and save").click()
    await expect(verdict).to_have_text(
        "Compliant, and saved: record percent 50%, retention days 30 days. "
        "It applies from the next call."
    )
    number = await get(client, admin, "/v1/numbers/+15550101")
    assert (number["record_percent"], number["retention_days"]) == (50, 30)


async def test_users_teams_privacy_requests_and_the_audit_log(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    admin = await add_user(client, "ada@example.com", "admin")
    await bot_call(client, new_caller, "+15557300001")
    page = await new_page()
    await sign_in(page, client, "ada@example.com", "/admin")

    # Users: add, change a role (with a confirmation), delete.
    new_user = page.get_by_role("form", name="Add a user")
    await new_user.get_by_label("Name").fill("Ben")
    await new_user.get_by_label("Email").fill("ben@example.com")
    await new_user.get_by_label("Role").select_option("agent")
    await new_user.get_by_label("Teams").fill("desk, support")
    await new_user.get_by_label("Password").fill("a long password")
    await new_user.get_by_role("button", name="Add user").click()
    await expect(page.get_by_role("status")).to_have_text("Added Ben (Agent).")
    await page.get_by_label("Role of Ben").select_option("supervisor")
    await page.get_by_role("button", name="Save Ben").click()
    await (
        page.get_by_role("dialog", name="Make Ben a Supervisor?")
        .get_by_role("button", name="Change role")
        .click()
    )
    await expect(page.get_by_role("status")).to_have_text("Saved Ben.")
    users = (await get(client, admin, "/v1/users"))["items"]
    ben = next(u for u in users if u["email"] == "ben@example.com")
    assert (ben["role"], ben["teams"]) == ("supervisor", ["desk", "support"])
    # An Admin is offered no Owner role, and cannot change their own.
    assert "owner" not in await page.get_by_label("Role of Ben").evaluate(
        "s => [...s.options].map(o => o.value)"
    )
    await expect(page.get_by_label("Role of Ada")).to_be_disabled()
    await page.get_by_role("button", name="Delete Ben").click()
    await (
        page.get_by_role("dialog", name="Delete Ben?")
        .get_by_role("button", name="Delete user")
        .click()
    )
    await expect(page.get_by_role("status")).to_have_text("Deleted Ben.")

    # Teams: add one, give it bots.
    await page.get_by_label("Team id").fill("night")
    await page.get_by_role("button", name="Add team").click()
    await expect(page.get_by_role("status")).to_have_text("Added team night.")
    await page.get_by_label("Bots of team night").fill("3")
    await page.get_by_role("button", name="Save team night").click()
    await expect(page.get_by_role("status")).to_have_text("Team night now has 3 bot(s).")
    teams = {t["id"]: t for t in (await get(client, admin, "/v1/teams"))["items"]}
    assert teams["night"]["bots"] == 3

    # An access export for the caller: a ZIP to download, with its receipt.
    privacy = page.get_by_role("region", name="Privacy requests")
    export = privacy.get_by_role("form", name="Access export")
    await export.get_by_label("Caller's number", exact=True).fill("+15557300001")
    await export.get_by_role("button", name="Build export").click()
    receipt = privacy.locator("#receipts li").first
    await expect(receipt).to_contain_text("Access export for caller +15557300001")
    async with page.expect_download() as download_info:
        await receipt.get_by_role("link", name=re.compile(r"^Download export-")).click()
    download = await download_info.value
    path = await download.path()
    assert path is not None
    assert path.read_bytes()[:2] == b"PK"
    # An erasure of the caller, after a confirmation, with its receipt.
    erase = privacy.get_by_role("form", name="Erasure")
    await erase.get_by_label("Caller's number", exact=True).fill("+15557300001")
    await erase.get_by_role("button", name="Erase…").click()
    await (
        page.get_by_role("dialog", name="Erase caller +15557300001?")
        .get_by_role("button", name="Erase for good")
        .click()
    )
    receipt = privacy.locator("#receipts li").first
    await expect(receipt).to_contain_text(re.compile(r"Erasure e_\w+"))
    await expect(receipt).to_contain_text("Recordings deleted1")
    assert (await get(client, admin, "/v1/recordings"))["items"] == []

    # The audit log, searched by action and by text.
    audit = page.get_by_role("region", name="Audit log")
    await audit.get_by_label("Action").fill("privacy.erase_contact")
    await audit.get_by_role("button", name="Search").click()
    await expect(audit.locator("tbody tr")).to_have_count(1)
    await expect(audit.locator("tbody tr")).to_contain_text("privacy.erase_contact")
    await audit.get_by_role("button", name="Clear").click()
    await audit.get_by_label("Containing").fill("night")
    await expect(audit.locator("tbody tr").first).to_contain_text("teams.")
    assert js_errors(page) == []


async def test_an_owner_sees_users_and_billing_and_no_call_data(
    serve: Serve, new_page: NewPage, new_caller: Callable[..., Any]
) -> None:
    client = await serve()
    admin = await add_user(client, "ada@example.com", "admin")
    await add_user(client, "olga@example.com", "owner")
    await bot_call(client, new_caller, "+15557300001")
    page = await new_page()
    requested: list[str] = []

    def track(request: Request) -> None:
        if "/v1/" in request.url:
            requested.append(request.url.split("/v1/", 1)[1].split("?")[0])

    page.on("request", track)
    await sign_in(page, client, "olga@example.com", "/admin")
    await expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Billing")).to_be_visible()
    for hidden in ("Numbers", "Privacy requests", "Audit log"):
        await expect(page.get_by_role("heading", name=hidden)).to_be_hidden()
    nav = page.get_by_role("navigation", name="Dashboard sections")
    assert await nav.get_by_role("link").all_text_contents() == ["Users", "Billing"]
    await expect(page.locator("#billing-facts")).to_contain_text("Seats (users who are not Owners)")
    await expect(page.locator("#teams")).to_be_hidden()
    # An Owner may grant the Owner role.
    assert "owner" in await page.get_by_label("Role of Ada").evaluate(
        "s => [...s.options].map(o => o.value)"
    )
    assert sorted(set(requested)) == ["auth/login", "billing", "me", "users"]
    owner_id = (await audited(client, admin, action="auth.login"))[-1]["actor_id"]
    outcomes = {e["outcome"] for e in await audited(client, admin, actor_id=owner_id)}
    assert outcomes == {"ok"}


async def test_other_roles_are_told_the_dashboard_is_not_for_them(
    serve: Serve, new_page: NewPage
) -> None:
    client = await serve()
    await add_user(client, "sam@example.com", "supervisor")
    page = await new_page()
    await sign_in(page, client, "sam@example.com", "/admin")
    await expect(page.get_by_role("region", name="Not for your role")).to_contain_text(
        "You are signed in as a Supervisor. The admin dashboard is for Admins"
    )
    await expect(page.get_by_role("heading", name="Numbers")).to_be_hidden()
