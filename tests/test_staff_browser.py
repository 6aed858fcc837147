"""The staff web page in a real browser (issue 15): Debian's Chromium, headless, driven by
Selenium through Debian's chromedriver, against the real bot (`run_channels`) talking to
the fake Telegram Bot API on 127.0.0.1 (polling mode: the web server runs for the page).

Steps: a customer orders on Telegram; an admin types /web in the staff group and opens the
link; signs in; finds the order by the customer's name typed without diacritics; replies;
hands the order to the carrier after the confirmation page showing the slip; the customer
receives the reply and the shipping notice through the fake Telegram API. A POST without
the CSRF token is refused; the used link and an expired one are refused.

`.ci/run` installs `chromium` and `chromium-driver` when they are missing.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from storage.models import Disclosure, RelayedMessage
from storage.staff_web import StaffLoginToken
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import tr
from tests.live_bot import free_port
from tests.telegram_helpers import (
    CUSTOMER,
    ORDER_NAME,
    STAFF_ADMIN,
    STAFF_CHAT,
    TOKEN,
    order_by_code,
    place_order,
    release_long_poll,
    running_bot,
    telegram_settings,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN) as fake:
        yield fake
        await release_long_poll(fake)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "Chromium is missing: apt-get install chromium chromium-driver (.ci/run does it)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=412,915",  # a phone's screen
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


def leave_page(browser: webdriver.Chrome, action) -> None:  # type: ignore[no-untyped-def]
    """Run what leads to another page and wait until that page replaced this one (else
    the next lookup may find an element of the old page)."""
    # A mark on the old page's window: a new page has a fresh window object without it.
    # (Chromium's staleness check can fail mid-navigation with "Node ... does not belong
    # to the document", so the old page's elements are not used for waiting.)
    browser.execute_script("window.__leaving = true;")
    action()
    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda driver: driver.execute_script(
            "return !window.__leaving && document.readyState === 'complete';"
        )
    )


def follow(browser: webdriver.Chrome, by: str, value: str) -> None:
    """Click what leads to another page and wait for that page."""
    leave_page(browser, lambda: browser.find_element(by, value).click())


async def in_browser(action, *args):  # type: ignore[no-untyped-def]
    """Selenium blocks: run it beside the event loop that serves the bot."""
    return await asyncio.to_thread(action, *args)


async def sign_in_link(bot, api: FakeTelegramAPI) -> str:  # type: ignore[no-untyped-def]
    calls = await bot.send(
        api.text_update(STAFF_ADMIN, "/web", chat_id=STAFF_CHAT, chat_type="supergroup")
    )
    (message,) = [
        c
        for c in calls
        if c.method == "sendMessage"
        and c["chat_id"] == STAFF_CHAT
        and "/staff/login/" in str(c["text"])
    ]
    found = re.search(r"http://\S+", html.unescape(str(message["text"])))
    assert found is not None
    return found.group(0)


async def test_staff_page_in_chromium(
    api: FakeTelegramAPI, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    port = free_port()
    settings = telegram_settings(
        tmp_path,
        api,
        webhook_port=port,
        staff_web_enabled=True,
        staff_web_public_url=f"http://localhost:{port}",  # a secure context for the cookie
    )
    async with running_bot(api, settings) as bot:
        code = await place_order(bot, CUSTOMER)  # "Nguyễn Thị Lan"
        link = await sign_in_link(bot, api)

        # Sign in through the link: the page asks for a press first.
        await in_browser(browser.get, link)
        await in_browser(follow, browser, By.ID, "sign-in")
        assert await in_browser(lambda: browser.current_url) == f"http://localhost:{port}/staff/"
        cookie = await in_browser(browser.get_cookie, "vav_staff")
        assert cookie is not None and cookie["httpOnly"] and cookie["secure"]
        assert cookie["sameSite"] == "Strict"

        # Find the order by the name typed without diacritics.
        await in_browser(browser.get, f"http://localhost:{port}/staff/orders")

        def search() -> None:
            browser.find_element(By.ID, "q").send_keys("nguyen thi lan")
            follow(browser, By.ID, "search")
            follow(browser, By.LINK_TEXT, code)

        await in_browser(search)
        page = await in_browser(lambda: browser.page_source)
        assert ORDER_NAME in page and "q=" not in await in_browser(lambda: browser.current_url)

        # Reply to the customer.
        def reply() -> None:
            browser.find_element(By.ID, "reply").send_keys("Dạ shop gói tranh chiều nay ạ")
            follow(browser, By.ID, "send")

        await in_browser(reply)
        await bot.settle()
        relayed = await bot.wait_sent(CUSTOMER, "Dạ shop gói tranh chiều nay ạ")
        assert relayed["text"] == html.escape(
            tr("order.staff_message", code=code, text="Dạ shop gói tranh chiều nay ạ")
        )
        assert tr("order.staff.relayed", code=code) in await in_browser(
            lambda: browser.find_element(By.CLASS_NAME, "flash").text
        )

        # Hand to the carrier: the confirmation page shows exactly the slip.
        await in_browser(follow, browser, By.ID, "ship")
        slip = await in_browser(lambda: browser.find_element(By.ID, "slip").text)
        assert slip.splitlines()[1:] == [
            f"Mã đơn: {code}",
            f"Người nhận: {ORDER_NAME}",
            "Điện thoại: 0912 345 678",
            "Địa chỉ: 12 Hàng Bông, phường Hoàn Kiếm, Hà Nội",
        ]
        assert (await order_by_code(bot.runtime, code)).status == "new"
        await in_browser(follow, browser, By.ID, "confirm-ship")
        await bot.settle()
        shipping = html.escape(
            tr("order.notify.shipping", code=code, carrier=settings.carrier_name)
        )
        notice = await bot.wait_sent(CUSTOMER, shipping)  # the customer receives it
        assert notice["text"] == shipping
        assert (await order_by_code(bot.runtime, code)).status == "shipping"
        async with bot.runtime.sessions() as session:
            (disclosure,) = (await session.scalars(select(Disclosure))).all()
            assert disclosure.staff_actor.startswith(f"staff:web:{STAFF_ADMIN}:")
            out = (await session.scalars(select(RelayedMessage))).all()
            assert [m.direction for m in out] == ["out"]

        # A POST without the CSRF token (a form another site or a script planted) is refused,
        # although the browser sends the session cookie with it.
        order = await order_by_code(bot.runtime, code)
        await in_browser(
            leave_page,
            browser,
            lambda: browser.execute_script(
                "const f = document.createElement('form'); f.method = 'post';"
                " f.action = '/staff/orders/' + arguments[0] + '/status';"
                " const i = document.createElement('input'); i.name = 'status';"
                " i.value = 'done'; f.appendChild(i); document.body.appendChild(f);"
                " f.submit();",
                order.id,
            ),
        )
        assert html.escape(tr("staff.web.error.csrf")) in await in_browser(
            lambda: browser.page_source
        )
        assert (await order_by_code(bot.runtime, code)).status == "shipping"

        # The used link, and an expired one, are refused.
        await in_browser(browser.get, link)
        assert tr("staff.web.error.link") in await in_browser(lambda: browser.page_source)
        expired = await sign_in_link(bot, api)
        async with bot.runtime.sessions() as session:
            fresh = (
                await session.scalars(
                    select(StaffLoginToken).where(StaffLoginToken.used_at.is_(None))
                )
            ).all()
            assert len(fresh) == 1
            fresh[0].expires_at = fresh[0].created_at - timedelta(seconds=1)  # 10 minutes on
            await session.commit()
        async with httpx.AsyncClient() as http:
            answer = await http.post(expired)
        assert answer.status_code == 410
