"""The operators' console in a real headless Chromium, driven by Selenium.

An operator signs in, sees a dead letter and why it died, sees a `<script>` poison
message as text, redrives the dead letter once its missing event has arrived and sees
it applied. Screenshots are saved under the test's tmp dir; with
MAAS_CONSOLE_SCREENSHOTS=<dir> they are copied there too (docs/console/ holds the ones
the documentation shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as expected
from selenium.webdriver.support.wait import WebDriverWait

from shared.accounting.events import Batch, Event, rfc3339_from_ms
from shared.aio import running
from shared.keys import Keys
from tests.console import indexed_dead_letters, ledger_url
from tests.stack import PARIS, ServiceStack, debit_event, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
POISON = '<script>document.title = "owned"</script>'


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1360,1000", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


class Screenshots:
    def __init__(self, driver: webdriver.Chrome, tmp: Path) -> None:
        self.driver, self.tmp = driver, tmp
        self.copy_to = os.environ.get("MAAS_CONSOLE_SCREENSHOTS")

    def take(self, name: str) -> None:
        """The whole page, however long: the viewport is stretched to the page's height."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1360, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )
        path = self.tmp / f"{name}.png"
        assert self.driver.save_screenshot(str(path))
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        if self.copy_to:
            Path(self.copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(self.copy_to) / path.name)


async def steady_traffic(stack: ServiceStack, http: aiohttp.ClientSession, account: str) -> None:
    """Memes one after another, so the pipeline charts have lines.

    Only the charts need them: an answer that is not a meme (a busy machine's timeout) is
    no failure of the console, so statuses are not checked here.
    """
    while True:
        async with http.get(
            f"{stack.gateway}/memes", params=PARIS, headers=stack.auth(account)
        ) as response:
            await response.read()
        await asyncio.sleep(0.2)


def fresh_debit(account: str, seq: int) -> Event:
    """A debit charged now, so the ledger's lag chart shows a real lag."""
    return dataclasses.replace(
        debit_event(account, seq), at=rfc3339_from_ms(time.time_ns() // 10**6)
    )


def settled(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    """Wait for the page a click leads to (a redrive may take seconds on a busy machine)."""
    return WebDriverWait(driver, 60)


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def operator_session(
    driver: webdriver.Chrome, shots: Screenshots, base: str, token: str, gap: str, poison: str
) -> None:
    driver.get(f"{base}/console/dead-letters")
    assert driver.current_url.endswith("/console/signin")  # no session yet
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    settled(driver).until(expected.url_contains("/console/dead-letters"))
    assert text_of(driver, "operator") == "ops-browser"
    listing = text_of(driver, "letters")
    assert gap in listing
    assert poison in listing
    assert "gap for 'browser-gap'" in listing
    shots.take("dead-letters")

    driver.find_element(By.NAME, "account").send_keys("browser-gap")
    driver.find_element(By.CSS_SELECTOR, "#filter button").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "filtered")))
    filtered = text_of(driver, "letters")
    assert gap in filtered
    assert poison not in filtered
    shots.take("dead-letters-filtered")

    driver.get(f"{base}/console/dead-letters/{poison}")
    assert text_of(driver, "body") == POISON  # shown as text, never run
    assert driver.title != "owned"
    assert driver.find_elements(By.TAG_NAME, "script") == []
    with contextlib.suppress(NoAlertPresentException):
        pytest.fail(f"an alert opened: {driver.switch_to.alert.text}")

    driver.get(f"{base}/console/dead-letters/{gap}")
    assert "gap for 'browser-gap'" in text_of(driver, "reason")
    assert "applies next" in text_of(driver, "standings")  # its missing event has arrived
    driver.find_element(By.ID, "redrive").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "why")))
    driver.find_element(By.ID, "why").send_keys("seq 1 arrived late")
    driver.find_element(By.ID, "confirm").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "outcome")))
    assert f"redriven {gap}" in text_of(driver, "outcome")

    driver.get(f"{base}/console/books")
    driver.find_element(By.NAME, "q").send_keys("browser-")
    driver.find_element(By.CSS_SELECTOR, "#find button").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "found")))
    found = text_of(driver, "found")
    assert "browser-gap" in found
    assert "browser-traffic" in found
    shots.take("books-search")
    driver.find_element(By.LINK_TEXT, "browser-gap").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "history")))
    history = text_of(driver, "history")
    assert history.count("meme:text") == 2  # both events applied, seq 2 by the redrive
    assert "Redis" in driver.page_source
    assert "None." in text_of(driver, "no-letters")  # redriven: no dead letter holds it
    shots.take("account")

    driver.get(f"{base}/console/dead-letters")
    assert gap not in text_of(driver, "letters")
    assert "seq 1 arrived late" in text_of(driver, "journal")

    driver.get(f"{base}/console/books")
    driver.find_element(By.ID, "reconcile").click()
    settled(driver).until(expected.presence_of_element_located((By.ID, "statuses")))
    assert "by ops-browser" in driver.page_source
    shots.take("books")


async def test_an_operator_signs_in_sees_a_poison_message_and_redrives_a_dead_letter(
    make_stack: object, http: aiohttp.ClientSession, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    stack: ServiceStack = await make_stack(  # type: ignore[operator]
        max_receive_count=2, pipeline_sample_interval_s=1, reconcile_interval_s=0
    )
    base = ledger_url(stack)
    await stack.create_account(http, "browser-gap", 10)
    await stack.create_account(http, "browser-traffic", 1000)
    shard = Keys(stack.settings.shards).shard_of("browser-gap")
    await stack.send_raw(POISON, f"s{(shard + 1) % stack.settings.shards}")
    late = Batch(shard, [fresh_debit("browser-gap", 2)])
    await stack.send_raw(late.encode(), late.group_id)  # seq 1 has not arrived: a gap
    letters = await indexed_dead_letters(stack, 2)
    gap = next(d["_id"] for d in letters if d["group_id"] == late.group_id)
    poison = next(d["_id"] for d in letters if d["group_id"] != late.group_id)
    await stack.send_batches([fresh_debit("browser-gap", 1)], per_message=1)

    async def seq_one_applied() -> bool:
        # The dead letter is indexed on its last receive and blocks its group until SQS
        # moves it, so seq 1 applies a visibility timeout later.
        stored = await stack.mongo_account("browser-gap")
        return stored is not None and stored["seq"] == 1

    await wait_for(seq_one_applied, 60, "the missing event to apply")

    shots = Screenshots(browser, tmp_path)
    token = stack.token("ops-browser", ("admin",))
    async with running(steady_traffic(stack, http, "browser-traffic")):
        await asyncio.to_thread(operator_session, browser, shots, base, token, gap, poison)
        await asyncio.sleep(15)  # a few samples for the charts
        await asyncio.to_thread(browser.get, f"{base}/console/pipeline")
    assert "no samples" not in browser.page_source
    await asyncio.to_thread(shots.take, "pipeline")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "account.png", "books-search.png", "books.png", "dead-letters-filtered.png",
        "dead-letters.png", "pipeline.png",
    ]  # fmt: skip
