"""Headless Chromium through Selenium, for the `browser` tests.

The driver is Debian's /usr/bin/chromedriver driving /usr/bin/chromium (`make browser-test` and
.ci/run install both with apt): the Service is given the driver's path, SE_OFFLINE is set, and
Selenium Manager is replaced by a function that fails, so no test can ever download a browser or
a driver. Chromium starts with the flags this machine's closed network needs (no background
networking, component updates or sync) and a fresh profile per test.

Screenshots go to `var/test-artifacts/` (git-ignored; RECSITE_TEST_ARTIFACTS moves them): each
test saves the ones it names, and a failing test saves `<test name>-failure.png` as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from tests.conftest import CHROMEDRIVER, CHROMIUM

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RECSITE_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
WAIT_SECONDS = 20
ADMIN_PASSWORD = "browser-test-password"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1400,1100",
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each phase's report on the test item, so the browser fixture knows a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _no_selenium_manager(*_args: Any, **_kwargs: Any) -> dict:
    raise AssertionError("Selenium Manager was asked for a driver: the browser tests use Debian's only")


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver), closed after the test; a screenshot if the test failed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setattr(SeleniumManager, "binary_paths", _no_selenium_manager)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / f"{_safe(request.node.name)}-failure.png"))
        driver.quit()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@pytest.fixture
def screenshot(browser: Any) -> Callable[[str], Path]:
    """Save the whole page (the window grown to its height) as var/test-artifacts/<name>.png."""

    def save(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{_safe(name)}.png"
        width = browser.get_window_size()["width"]
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(height + 140, 600), 6000))
        assert browser.save_screenshot(str(path)), f"no screenshot written to {path}"
        return path

    return save


@pytest.fixture
def admin_user(transactional_db: None, settings: Any) -> AbstractBaseUser:
    """A superuser `admin` with a known password (cheap hashing: created per test)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return get_user_model().objects.create_superuser("admin", "admin@localhost", ADMIN_PASSWORD)


@pytest.fixture
def isolated_artifacts(settings: Any, tmp_path: Path) -> None:
    """Model artifacts in a temporary media root, as the recommendations tests keep them."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"


def wait_for(browser: Any, condition: Callable[[Any], Any], message: str) -> Any:
    """Wait (up to WAIT_SECONDS) until `condition(browser)` is truthy; return its value.

    An element the page replaced while the condition read it counts as "not yet", not as a failure.
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition, message)


def admin_login(
    browser: Any, base_url: str, password: str = ADMIN_PASSWORD, next_path: str = "/admin/"
) -> None:
    """Sign in through the admin's login form as `admin`."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/admin/login/?next={next_path}")
    browser.find_element(By.ID, "id_username").send_keys("admin")
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
