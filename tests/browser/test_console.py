"""The console in a real headless chromium: sign in, clusters, AddNodes with live progress, RAM scoping,
markup rendered as text, sign-out. With HPCPLANE_UPDATE_SCREENSHOTS=1 it also writes docs/images/."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.console import XSS_DESCRIPTION, XSS_NAME, World, make_world
from tests.support.live import LiveServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UPDATE_SCREENSHOTS = os.environ.get("HPCPLANE_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, World]]:
    home = tmp_path_factory.mktemp("console")
    server = LiveServer(home, sim_step_seconds="0.15", sim_jitter="0").start()
    try:
        yield server, make_world(server, home)
    finally:
        server.stop()


def wait_for(driver: WebDriver, condition: Callable[[], object], timeout: float = 20.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda _: condition())


def css(driver: WebDriver, selector: str) -> list[WebElement]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver: WebDriver, name: str) -> None:
    if UPDATE_SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(IMAGES / f"{name}.png"))


def sign_in(driver: WebDriver, server: LiveServer, key: dict[str, str]) -> None:
    driver.get(f"http://{server.endpoint}/console/")
    wait_for(driver, lambda: css(driver, "#access-key-id"))
    css(driver, "#access-key-id")[0].send_keys(key["AccessKeyId"])
    css(driver, "#access-key-secret")[0].send_keys(key["AccessKeySecret"])
    css(driver, "#signin-submit")[0].click()
    wait_for(driver, lambda: css(driver, "#clusters"))


def sign_out(driver: WebDriver) -> None:
    css(driver, "#signout")[0].click()
    wait_for(driver, lambda: css(driver, "#signin"))


def test_root_signs_in_adds_nodes_and_watches_progress_live(
    browser: WebDriver, site: tuple[LiveServer, World]
) -> None:
    """A wrong secret is refused; the account's key sees both clusters (markup in a name and a description
    shown as text, never run); AddNodes started from the page, after its confirmation, advances its
    progress bar step by step and ends in Success without a reload; signing out ends the session."""
    server, world = site
    driver = browser
    driver.get(f"http://{server.endpoint}/console/")
    wait_for(driver, lambda: css(driver, "#access-key-id"))
    screenshot(driver, "console-signin")
    css(driver, "#access-key-id")[0].send_keys(world.root["AccessKeyId"])
    css(driver, "#access-key-secret")[0].send_keys("not-the-secret")
    css(driver, "#signin-submit")[0].click()
    wait_for(driver, lambda: "InvalidAccessKeyPair" in css(driver, "#signin .error")[0].text)

    sign_in(driver, server, world.root)
    names = [cell.text for cell in css(driver, "#clusters .cluster-name")]
    assert sorted(names) == sorted(["alpha", XSS_NAME])
    descriptions = [cell.text for cell in css(driver, "#clusters .description")]
    assert XSS_DESCRIPTION in descriptions
    assert css(driver, "#clusters img, #clusters script, #clusters b") == []
    assert driver.execute_script("return window.__xss === undefined") is True
    screenshot(driver, "console-clusters")

    css(driver, f'tr[data-cluster="{world.mine}"] .cluster-name')[0].click()
    wait_for(driver, lambda: css(driver, "#nodes tbody tr"))
    driver.execute_script("window.__sameDocument = true")
    css(driver, "#add-count")[0].clear()
    css(driver, "#add-count")[0].send_keys("2")
    css(driver, "#add-nodes")[0].click()
    wait_for(driver, lambda: css(driver, "#confirm:not([hidden])"))
    assert "Add 2 compute node(s) to alpha?" in css(driver, "#confirm-text")[0].text
    css(driver, "#confirm-ok")[0].click()
    wait_for(driver, lambda: css(driver, "#action-ok"))
    task_id = css(driver, "#action-ok")[0].text.rsplit(" ", 1)[-1]
    row = f'#tasks tr[data-task="{task_id}"]'

    seen: list[int] = []

    def step() -> bool:
        # Read in one script: the row is replaced by each event, so a held element would go stale.
        found = driver.execute_script(
            "const r = document.querySelector(arguments[0]); return r && [r.dataset.step, r.dataset.status]",
            row,
        )
        if not found:
            return False
        number, status = int(found[0]), found[1]
        if not seen or seen[-1] != number:
            seen.append(number)
            if status == "Processing" and len(seen) == 4:
                screenshot(driver, "console-cluster-progress")
        return bool(status == "Success")

    wait_for(driver, step, timeout=60)
    assert seen == sorted(seen), seen  # the bar moved through the steps, never back
    assert len(seen) >= 3, seen
    assert driver.execute_script("return window.__sameDocument === true") is True  # no reload
    assert css(driver, f"{row} .steps")[0].text == f"{seen[-1]}/{seen[-1]}"
    wait_for(driver, lambda: len(css(driver, "#nodes tbody tr")) == 5)  # 1 manager, 1 login, 1 + 2 computes
    screenshot(driver, "console-cluster")

    driver.get(f"http://{server.endpoint}/console/#/audit")
    wait_for(driver, lambda: css(driver, "#audit tbody tr"))
    assert any("ehpc:AddNodes" in r.text and "Allow" in r.text for r in css(driver, "#audit tbody tr"))
    screenshot(driver, "console-audit")

    cookie = driver.get_cookie("hpcplane_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    sign_out(driver)
    assert driver.get_cookie("hpcplane_session") is None
    stale = httpx.get(
        f"http://{server.endpoint}/console/api/session",
        headers={"X-Hpcplane-Console": "1"},
        cookies={"hpcplane_session": cookie["value"]},
    )
    assert stale.status_code == 401
    assert stale.json()["Code"] == "SessionRequired"


def test_ram_user_sees_only_its_cluster(browser: WebDriver, site: tuple[LiveServer, World]) -> None:
    """A RAM user whose policy reaches one cluster sees that cluster only, and is refused (NotAuthorized,
    audited) when it asks for the other by its address."""
    server, world = site
    driver = browser
    sign_in(driver, server, world.user)
    assert [cell.text for cell in css(driver, "#clusters .cluster-name")] == ["alpha"]
    assert "user/dana" in css(driver, "#who")[0].text
    driver.get(f"http://{server.endpoint}/console/#/cluster/{world.other}")  # same page: a hash change
    wait_for(
        driver,
        lambda: driver.execute_script(
            "const e = document.querySelector('main .error');"
            "return e && e.textContent.includes('NotAuthorized')"
        ),
    )
    sign_out(driver)
