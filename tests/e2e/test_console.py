"""The web console in real headless Chromium (Debian's chromium and chromium-driver), the
whole way a person goes: sign up, the code from the mail sink, an upload, the job, its
text, the word boxes over the page, a download, deletion, logout. A screenshot of each
step goes to ``.local/console/``; the boxes are checked against the job's words and
against the ink in the image itself.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as shows
from selenium.webdriver.support.ui import WebDriverWait

from bench.ocr_samples import generated, word_recall
from tests.support.mailbox import Mailbox
from tests.support.stack import LOCAL, Stack

PASSWORD = "a browser typed passphrase 21"
SAMPLE = generated()[0]
SCREENS = LOCAL / "console"
PIXEL_TOLERANCE = 2


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1800", "--disable-gpu"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(browser: WebDriver, step: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENS / f"{step}.png"))


def visible(browser: WebDriver, selector: str, timeout: float = 30) -> Any:
    return WebDriverWait(browser, timeout).until(
        shows.visibility_of_element_located((By.CSS_SELECTOR, selector)))


def fill(browser: WebDriver, form: str, **fields: str) -> None:
    for name, value in fields.items():
        browser.find_element(By.CSS_SELECTOR, f"{form} [name={name}]").send_keys(value)
    browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()


def box_of(word: dict[str, Any]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in word["box"]], [p[1] for p in word["box"]]
    return min(xs), min(ys), max(xs), max(ys)


def test_a_person_goes_from_sign_up_to_the_text_of_a_page_in_chromium(
        browser: WebDriver, stack: Stack, mailbox: Mailbox, downloads: Path,
        tmp_path: Path) -> None:
    email = f"console-{uuid.uuid4().hex[:12]}@example.com"
    browser.get(f"{stack.gateway}/function/console/")
    visible(browser, "#signup-form")
    screenshot(browser, "01-welcome")

    fill(browser, "#signup-form", name="Console User", email=email, password=PASSWORD)
    visible(browser, "#verify-form")
    assert browser.find_element(By.ID, "verify-email").text == email
    screenshot(browser, "02-code-asked")
    mail = mailbox.wait_for(to=email, subject="verification code", timeout=30)
    code = re.search(r"code is (\d{6})", mail.get_content()).group(1)  # type: ignore[union-attr]
    fill(browser, "#verify-form", code=code)
    visible(browser, "#upload-form")
    assert browser.find_element(By.ID, "who-email").text == email
    screenshot(browser, "03-signed-in")

    page = tmp_path / "page.png"
    page.write_bytes(SAMPLE.data)
    browser.find_element(By.ID, "file").send_keys(str(page))
    WebDriverWait(browser, 90).until(
        lambda b: b.find_element(By.ID, "job-status").text in ("done", "failed"))
    assert browser.find_element(By.ID, "job-status").text == "done"
    visible(browser, "#pages figure img")
    screenshot(browser, "04-job-done")
    job_id = browser.find_element(By.ID, "job-id").text
    text = browser.find_element(By.ID, "job-text").text
    assert word_recall(SAMPLE.truth, text) >= 0.9, text

    # The boxes: where the job says each word is, and where the image has its ink.
    token = requests.post(f"{stack.gateway}/function/token", timeout=30, data={
        "grant_type": "password", "username": email, "password": PASSWORD}).json()
    job = requests.get(f"{stack.gateway}/function/ocr-jobs/{job_id}", timeout=30, headers={
        "Authorization": f"Bearer {token['access_token']}"}).json()
    words = [w for line in job["pages"][0]["lines"] for w in line["words"]]
    drawn = browser.execute_script("""
        const figure = document.querySelector('#pages figure');
        const img = figure.querySelector('img').getBoundingClientRect();
        const scale = figure.querySelector('img').naturalWidth / img.width;
        return [...figure.querySelectorAll('rect')].map((r) => {
          const b = r.getBoundingClientRect();
          return {word: r.dataset.word, title: r.querySelector('title').textContent,
                  box: [(b.left - img.left) * scale, (b.top - img.top) * scale,
                        (b.right - img.left) * scale, (b.bottom - img.top) * scale]};
        });""")
    assert [d["word"] for d in drawn] == [w["text"] for w in words] and words
    ink = Image.open(io.BytesIO(SAMPLE.data)).convert("L")
    for shown, word in zip(drawn, words, strict=True):
        assert all(abs(a - b) <= PIXEL_TOLERANCE
                   for a, b in zip(shown["box"], box_of(word), strict=True)), (shown, word)
        assert ink.crop(box_of(word)).getextrema()[0] < 100, word  # dark pixels inside
        assert re.fullmatch(rf"{re.escape(word['text'])} \(confidence \d+ %\)", shown["title"])
    first = browser.find_element(By.CSS_SELECTOR, "#pages figure rect")
    ActionChains(browser).move_to_element(first).perform()
    screenshot(browser, "05-word-hovered")

    browser.find_element(By.CSS_SELECTOR, "[data-download=text]").click()
    downloaded = downloads / f"{job_id}.txt"
    deadline = time.monotonic() + 15
    while not downloaded.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert downloaded.read_text() == job["text"]

    row = visible(browser, f"#jobs tr[data-job='{job_id}']")
    screenshot(browser, "06-jobs")
    row.find_element(By.CSS_SELECTOR, "[data-action=delete]").click()
    WebDriverWait(browser, 5).until(shows.alert_is_present()).accept()  # "Delete job …?"
    WebDriverWait(browser, 15).until(
        lambda b: not b.find_elements(By.CSS_SELECTOR, f"#jobs tr[data-job='{job_id}']"))
    assert "No jobs yet" in browser.find_element(By.ID, "jobs").text
    assert requests.get(f"{stack.gateway}/function/ocr-jobs/{job_id}", timeout=30, headers={
        "Authorization": f"Bearer {token['access_token']}"}).status_code == 404

    # A page scanned sideways: read upright (angle), and its image shown turned the same
    # way under the boxes, so each box still sits on its word's ink where the person sees it.
    turned = tmp_path / "turned.png"
    Image.open(io.BytesIO(SAMPLE.data)).rotate(90, expand=True).save(turned)
    browser.find_element(By.ID, "file").send_keys(str(turned))
    WebDriverWait(browser, 90).until(
        lambda b: b.find_element(By.ID, "job-id").text not in ("", job_id)
        and b.find_element(By.ID, "job-status").text in ("done", "failed"))
    sideways = requests.get(
        f"{stack.gateway}/function/ocr-jobs/{browser.find_element(By.ID, 'job-id').text}",
        timeout=30, headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    page = sideways["pages"][0]
    assert sideways["status"] == "done" and page["angle"] in (90, 270), page["angle"]
    figure = visible(browser, "#pages figure svg image")
    browser.execute_script(
        "document.querySelectorAll('#pages figure rect').forEach((r) => r.remove());")
    shown = Image.open(io.BytesIO(browser.find_element(
        By.CSS_SELECTOR, "#pages figure").screenshot_as_png)).convert("L")
    shown = shown.resize((page["width"], page["height"]))
    screenshot(browser, "06b-turned-page")
    assert figure.get_attribute("transform")
    for word in (w for line in page["lines"] for w in line["words"]):
        assert shown.crop(box_of(word)).getextrema()[0] < 128, word  # its ink, upright

    # Nothing of the session is left where a later script could read it.
    assert browser.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    browser.find_element(By.ID, "logout").click()
    visible(browser, "#login-form")
    assert "Logged out." in browser.find_element(By.ID, "message").text
    screenshot(browser, "07-logged-out")
    logged = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert logged == [], logged  # no policy violation, no missing asset, no script error
