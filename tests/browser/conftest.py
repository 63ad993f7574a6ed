"""A headless Debian chromium driven by Selenium through Debian's chromedriver (never a downloaded
browser); skipped with a one-line reason when absent, required under CI=true."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.backends import IN_CI

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        if IN_CI:
            pytest.fail(f"selenium not installed ({error}); CI=true requires it", pytrace=False)
        pytest.skip(f"selenium not installed ({error})")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        reason = "chromium and chromium-driver not installed (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires them", pytrace=False)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,860")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
