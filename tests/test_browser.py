"""End to end: `streamlit run app.py` driven by headless Chromium through Playwright.

Needs Debian's chromium at /usr/bin/chromium and the playwright package. Under CI=true a
missing piece fails the test; elsewhere it skips with the reason.
SAVE_SCREENSHOT=path also writes the final screenshot there.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.many_users import free_port
from captioner import Captioner, Vocabulary
from ui.support import CHECKPOINT_ENV

from conftest import EXAMPLES, WORDS, write_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PHOTO = EXAMPLES / "chelsea.jpg"
START_TIMEOUT_S = 90
CAPTION_TIMEOUT_MS = 120_000


def require(ok: bool, reason: str) -> None:
    """CI must run the browser test, so there a missing piece is a failure, not a skip."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet (URLError is an OSError)
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(tmp_path):
    """A streamlit server on a free port, captioning with a fixture checkpoint."""
    require(CHROMIUM.exists(), f"{CHROMIUM} not found (install Debian's chromium package)")
    require(importlib.util.find_spec("playwright") is not None,
            "playwright is not installed (pip install playwright)")
    checkpoint = write_checkpoint(tmp_path / "soft.pt", Vocabulary.build(WORDS, min_count=1))
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, CHECKPOINT_ENV: str(checkpoint)}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    (tmp_path / "server.pid").write_text(str(server.pid))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield url, checkpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_upload_a_photo_and_see_caption_and_overlays(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, checkpoint = app_url
    want = Captioner.from_checkpoint(checkpoint).caption(PHOTO, beam_size=3, n_best=3)[0]
    assert len(want.words) >= 2  # the (seeded) fixture model says something for the cat
    shot = tmp_path / "app.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000},
                                    accept_downloads=True)
            page.goto(url)
            page.locator("input[type=file]").set_input_files(str(PHOTO))
            caption = page.locator(".st-key-caption h2")
            expect(caption).to_have_text(want.text, timeout=CAPTION_TIMEOUT_MS)
            grid = page.locator("[data-testid=stImage] img")
            expect(grid).to_have_count(len(want.words) + 1, timeout=CAPTION_TIMEOUT_MS)
            # The word selector (a slider over the words) switches the large overlay.
            large = page.locator("[data-testid=stImage]").first
            expect(large).to_contain_text(f"(word 1 of {len(want.words)})")
            page.locator("[data-testid=stMain] input[type=range]").first.press("ArrowRight")
            expect(large).to_contain_text(f"“{want.words[1]}” (word 2 of {len(want.words)})",
                                          timeout=CAPTION_TIMEOUT_MS)
            for image in grid.all():  # every overlay has really loaded and has pixels
                image.scroll_into_view_if_needed()
                expect(image).to_have_js_property("complete", True)
                assert image.evaluate("img => img.naturalWidth") > 0
            assert page.get_by_text("Timing: encoder").count() == 1
            assert page.locator("[data-testid=stException]").count() == 0
            # Streamlit scrolls inside <main>, not the document: grow the viewport to show it all.
            height = page.locator("[data-testid=stMain]").evaluate("main => main.scrollHeight")
            page.set_viewport_size({"width": 1400, "height": min(int(height), 4000)})
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot))
            # Both downloads are made on click (deferred) and hold what the page shows.
            for label, name in [("Overlay grid (PNG)", "chelsea.attention.png"),
                                ("Caption + maps (JSON)", "chelsea.caption.json")]:
                with page.expect_download(timeout=CAPTION_TIMEOUT_MS) as download:
                    page.get_by_role("button", name=label).click()
                assert download.value.suggested_filename == name
                download.value.save_as(tmp_path / name)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert Image.open(tmp_path / "chelsea.attention.png").format == "PNG"
    record = json.loads((tmp_path / "chelsea.caption.json").read_text())
    assert record["caption"] == want.text and len(record["attention"]) == len(want.words)
    if os.environ.get("SAVE_SCREENSHOT"):
        target = Path(os.environ["SAVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_many_photos_table_and_compare_mode_in_the_browser(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, checkpoint = app_url
    captioner = Captioner.from_checkpoint(checkpoint)
    coffee = EXAMPLES / "coffee.jpg"
    want = {p: captioner.caption(p, beam_size=3, n_best=3)[0].text or "(empty caption)"
            for p in (PHOTO, coffee)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator("input[type=file]").set_input_files([str(PHOTO), str(coffee)])
            expect(page.get_by_text("2 photos captioned")).to_be_visible(
                timeout=CAPTION_TIMEOUT_MS)
            expect(page.locator("[data-testid=stDataFrame]")).to_have_count(1)
            page.get_by_role("combobox", name="Open a photo's overlays").click()
            page.get_by_role("option").filter(has_text="2. coffee.jpg").click()
            expect(page.locator(".st-key-caption h2")).to_have_text(
                want[coffee], timeout=CAPTION_TIMEOUT_MS)
            # Compare mode on one photo: the fixture checkpoint beside the shipped models.
            page.goto(url)
            page.get_by_text("Every model side by side").click()
            # Upload only after the toggle's rerun has finished, or the rerun drops the file.
            expect(page.get_by_role("switch", name="Every model side by side")).to_be_checked()
            expect(page.locator("[data-testid=stStatusWidget]")).to_have_count(
                0, timeout=CAPTION_TIMEOUT_MS)
            page.locator("input[type=file]").set_input_files(str(PHOTO))
            expect(page.get_by_text("Checkpoint soft.pt")).to_be_visible(
                timeout=CAPTION_TIMEOUT_MS)
            expect(page.get_by_text(want[PHOTO], exact=True)).to_be_visible()
            expect(page.get_by_text("Word position (all models)")).to_be_visible()
            assert page.locator("[data-testid=stException]").count() == 0
        finally:
            browser.close()


def test_four_people_at_once_each_get_their_own_photos_caption(app_url, tmp_path):
    """The many-users benchmark at N = 4 (python -m benchmarks.many_users runs 8, 16, 32)."""
    from benchmarks.many_users import distinct_photos, drive_sessions, expected_captions

    url, checkpoint = app_url
    photos = distinct_photos(4, tmp_path / "photos")
    expected = expected_captions(str(checkpoint), photos)
    assert len(set(expected.values())) >= 2  # pages that mixed photos up would show
    server_pid = int(Path(tmp_path / "server.pid").read_text())
    result = drive_sessions(url, server_pid, photos, expected, timeout_s=240)
    assert result.correct == 4, result.wrong
    assert 0 < result.server_peak_rss_mb < 1500
