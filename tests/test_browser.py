"""End to end: `streamlit run app.py` driven by headless Chromium through Playwright.

Needs Debian's chromium at /usr/bin/chromium and the playwright package. Under CI=true a
missing piece fails the test; elsewhere it skips with the reason.
SAVE_SCREENSHOT=path also writes the final screenshot there.
"""
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.many_users import free_port
from captioner import Captioner, Vocabulary
from captioner.inference import DEFAULT_CHECKPOINTS
from ui.support import CHECKPOINT_ENV, MODEL_DIR_ENV

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


@contextlib.contextmanager
def serve(tmp_path: Path, checkpoint: Path | None):
    """A streamlit server on a free port: the fixture checkpoint as its default model, or
    (None) the shipped models. Yields its URL."""
    require(CHROMIUM.exists(), f"{CHROMIUM} not found (install Debian's chromium package)")
    require(importlib.util.find_spec("playwright") is not None,
            "playwright is not installed (pip install playwright)")
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {key: value for key, value in os.environ.items()
           if key not in (CHECKPOINT_ENV, MODEL_DIR_ENV)}
    if checkpoint is not None:
        env[CHECKPOINT_ENV] = str(checkpoint)
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    (tmp_path / "server.pid").write_text(str(server.pid))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def app_url(tmp_path):
    """A streamlit server captioning with a fixture checkpoint."""
    checkpoint = write_checkpoint(tmp_path / "soft.pt", Vocabulary.build(WORDS, min_count=1))
    with serve(tmp_path, checkpoint) as url:
        yield url, checkpoint


@pytest.fixture
def shipped_url(tmp_path):
    """A streamlit server on the shipped models (soft by default): real tags, real words."""
    for path in DEFAULT_CHECKPOINTS.values():
        require(path.exists(), f"{path} is not installed")
    with serve(tmp_path, None) as url:
        yield url


def launch(p):
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def settled(page) -> None:
    """Wait until the page has finished its rerun (no running indicator)."""
    from playwright.sync_api import expect
    expect(page.locator("[data-testid=stStatusWidget]")).to_have_count(
        0, timeout=CAPTION_TIMEOUT_MS)


def full_screenshot(page, path: Path, width: int = 1400) -> Path:
    """The whole page (Streamlit scrolls inside <main>: grow the viewport to show it all); with
    APP_SHOTS=folder, a copy goes there too."""
    height = page.locator("[data-testid=stMain]").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": width, "height": min(int(height), 5000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    if os.environ.get("APP_SHOTS"):
        folder = Path(os.environ["APP_SHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
    return path


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
    text = (tmp_path / "chelsea.caption.json").read_text()
    record = json.loads(text)
    assert record["caption"] == want.text and len(record["attention"]) == len(want.words)
    # The model by name and file name, never the server's path to it.
    assert record["model"] == {"name": "Checkpoint soft.pt", "file": "soft.pt"}
    assert str(checkpoint.parent) not in text and record["schema"]["version"] == 1
    if os.environ.get("SAVE_SCREENSHOT"):
        target = Path(os.environ["SAVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_many_photos_give_a_table_with_thumbnails_verdicts_and_pinned_words(shipped_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    coffee = EXAMPLES / "coffee.jpg"
    captioner = Captioner.from_checkpoint(DEFAULT_CHECKPOINTS["soft"])
    want = {p: captioner.caption(p, beam_size=3, n_best=3)[0] for p in (PHOTO, coffee)}
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(shipped_url)
            page.locator("input[type=file]").set_input_files([str(PHOTO), str(coffee)])
            expect(page.get_by_text("2 photos captioned")).to_be_visible(
                timeout=CAPTION_TIMEOUT_MS)
            table = page.locator("[data-testid=stDataFrame]")
            expect(table).to_have_count(1)
            # The grid's cells (its accessible table, hidden): a JPEG thumbnail, then file,
            # caption, score, milliseconds, the verdict, its chance of being wrong and the
            # pinned words, per row.
            headers = table.locator("th[role=columnheader]")
            expect(headers).to_have_text(["Photo", "File", "Caption", "Score", "ms", "Verdict",
                                          "Wrong?", "Pinned"], timeout=CAPTION_TIMEOUT_MS)
            cells = table.locator("td[role=gridcell]")
            expect(cells).to_have_count(16)
            for row, path in enumerate((PHOTO, coffee)):
                first = row * 8
                assert cells.nth(first).text_content().startswith("data:image/jpeg;base64,")
                assert cells.nth(first + 1).text_content() == path.name
                judged = want[path].confidence  # the shipped file's calibrated verdict
                assert cells.nth(first + 5).text_content() == judged.verdict
                # the accessible cell holds the number; the grid draws it as a percentage
                assert float(cells.nth(first + 6).text_content()) == round(judged.p_wrong, 3)
                pinned = [w for w, tag in zip(want[path].words, want[path].tagged) if tag]
                assert cells.nth(first + 7).text_content() == ", ".join(pinned)
            assert cells.nth(7).text_content().startswith("cat")  # the CNN is sure of the cat
            # The thumbnails are drawn: the photo column is not blank.
            shot = Image.open(io.BytesIO(table.screenshot())).convert("L")
            column = np.asarray(shot.crop((4, 40, 70, shot.height - 4)), dtype=float)
            assert column.std() > 20
            assert page.locator("[data-testid=stException]").count() == 0
            full_screenshot(page, tmp_path / "table_thumbnails.png")
        finally:
            browser.close()


def test_a_row_of_the_table_opens_and_compare_mode_keeps_each_models_grid(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, checkpoint = app_url
    captioner = Captioner.from_checkpoint(checkpoint)
    coffee = EXAMPLES / "coffee.jpg"
    want = {p: captioner.caption(p, beam_size=3, n_best=3)[0] for p in (PHOTO, coffee)}
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator("input[type=file]").set_input_files([str(PHOTO), str(coffee)])
            expect(page.get_by_text("2 photos captioned")).to_be_visible(
                timeout=CAPTION_TIMEOUT_MS)
            page.get_by_role("combobox", name="Open a photo's overlays").click()
            page.get_by_role("option").filter(has_text="2. coffee.jpg").click()
            expect(page.locator(".st-key-caption h2")).to_have_text(
                want[coffee].text or "(empty caption)", timeout=CAPTION_TIMEOUT_MS)
            # Compare mode on one photo: the fixture checkpoint beside the shipped models.
            page.goto(url)
            page.get_by_text("Every model side by side").click()
            # Upload only after the toggle's rerun has finished, or the rerun drops the file.
            expect(page.get_by_role("switch", name="Every model side by side")).to_be_checked()
            settled(page)
            page.locator("input[type=file]").set_input_files(str(PHOTO))
            expect(page.get_by_text("Checkpoint soft.pt")).to_be_visible(
                timeout=CAPTION_TIMEOUT_MS)
            settled(page)
            expect(page.get_by_text(want[PHOTO].text, exact=True)).to_be_visible()
            expect(page.get_by_text("Word position (all models)")).to_be_visible()
            models = page.locator("[data-testid=stMain] h3").count()
            assert models == 1 + sum(path.exists() for path in DEFAULT_CHECKPOINTS.values())
            # Every model keeps its word grid and says what guided it.
            for index in range(models):
                expect(page.locator(f".st-key-guided_{index}")).to_contain_text(
                    re.compile("Pinned:|No label guided it"))
                assert page.locator(f".st-key-grid_{index} [data-testid=stImage]").count() >= 1
            fixture_tiles = page.locator(f".st-key-grid_{models - 1} [data-testid=stImageCaption]")
            expect(fixture_tiles).to_have_text(want[PHOTO].words)
            if DEFAULT_CHECKPOINTS["soft"].exists():  # the shipped soft model pins the cat
                expect(page.locator(".st-key-guided_0")).to_contain_text("Pinned: cat (CNN")
            assert page.locator("[data-testid=stException]").count() == 0
            full_screenshot(page, tmp_path / "compare_grid.png")
        finally:
            browser.close()


def test_a_pinned_word_shows_the_cnns_confidence_and_explain_marks_unknown_words(
        shipped_url, tmp_path):
    """The shipped soft model on the cat: its pin, the labels and rivals behind it, the JSON
    download, a typed caption with a word the vocabulary lacks, and the example that clears
    the uploaded file."""
    from playwright.sync_api import expect, sync_playwright

    [tag] = Captioner.from_checkpoint(DEFAULT_CHECKPOINTS["soft"]).caption(PHOTO)[0].tags
    assert tag.word == "cat"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            # Narrow: the words wrap, but never between a pinned word and its number.
            page = browser.new_page(viewport={"width": 1000, "height": 1000},
                                    accept_downloads=True)
            page.goto(shipped_url)
            page.locator("input[type=file]").set_input_files(str(PHOTO))
            expect(page.locator(".st-key-caption h2")).to_be_visible(timeout=CAPTION_TIMEOUT_MS)
            settled(page)
            pinned = page.locator(".st-key-confidence span[style*=nowrap]").filter(
                has_text="CNN")
            expect(pinned).to_have_count(1)
            expect(pinned).to_contain_text(f"CNN {tag.confidence:.0%}")
            # One line: every box of the word, its pin and its number has the same top.
            tops = pinned.evaluate("span => [...span.getClientRects()].map(r => r.top)")
            assert max(tops) - min(tops) < 8, tops
            guided = page.locator(".st-key-guided")
            expect(guided).to_contain_text(f"the CNN's confidence {tag.confidence:.0%} from "
                                           "Egyptian cat")
            expect(guided).to_contain_text("rivals:")
            expect(guided).to_contain_text("it is pinned when that reaches 30%")
            full_screenshot(page, tmp_path / "single_pinned.png")
            with page.expect_download(timeout=CAPTION_TIMEOUT_MS) as download:
                page.get_by_role("button", name="Caption + maps (JSON)").click()
            data = download.value.path().read_bytes()
            # Explain: a caption with a word the model does not know.
            page.set_viewport_size({"width": 1400, "height": 1000})
            box = page.get_by_label("Type a caption", exact=False)
            box.fill("a cat sleeps on a zebracorn")
            box.press("Enter")
            unknown = page.locator(".st-key-unknown_words")
            expect(unknown).to_contain_text("Not in the model's vocabulary: “zebracorn”",
                                            timeout=CAPTION_TIMEOUT_MS)
            expect(unknown).to_contain_text("known words")
            word = page.locator(".st-key-explanation span[style*=nowrap]").filter(
                has_text="zebracorn")
            expect(word).to_have_text("zebracorn (unknown)")  # struck through, no number
            assert word.locator("del, s").count() == 1
            settled(page)
            full_screenshot(page, tmp_path / "explain_unknown.png")
            # An example replaces the uploaded photo, and its file chip goes.
            page.set_viewport_size({"width": 1400, "height": 1000})
            expect(page.locator("[data-testid=stFileChip]")).to_have_count(1)
            page.get_by_role("radio", name="Coffee").click()
            expect(page.locator("[data-testid=stFileChip]")).to_have_count(
                0, timeout=CAPTION_TIMEOUT_MS)
            settled(page)
            expect(page.locator("[data-testid=stImage]").first).to_contain_text("(word 1 of")
            assert page.locator("[data-testid=stException]").count() == 0
        finally:
            browser.close()
    record = json.loads(data)
    assert record["schema"] == {"name": "captioner-app-caption", "version": 1}
    assert record["model"] == {"name": "Soft attention (shipped)", "file": "soft_flickr8k.pt"}
    assert str(ROOT) not in data.decode() and "/weights/" not in data.decode()
    assert all(p == round(p, 3) for p in record["word_probs"])
    # maps to 4 decimals (17-digit numbers took 24 KB for 8 words); about 12 KB for a caption,
    # its explanation and the verdict
    assert len(data) < 16_000


def test_hard_attention_sample_mode_has_a_seed_and_a_sample_again_button(shipped_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(shipped_url)
            page.get_by_text("Hard attention (shipped)").click()
            expect(page.locator("[data-testid=stSidebar]")).to_contain_text(
                "hard attention ·", timeout=CAPTION_TIMEOUT_MS)
            settled(page)
            page.locator("input[type=file]").set_input_files(str(PHOTO))
            caption = page.locator(".st-key-caption h2")
            expect(caption).to_be_visible(timeout=CAPTION_TIMEOUT_MS)
            settled(page)
            # Expectation (the default) draws no outline and says so.
            expect(page.get_by_text("Expectation: the decoder reads the map's weighted "
                                    "average", exact=False).first).to_be_visible()
            page.get_by_role("combobox", name="Hard attention: what the decoder reads").click()
            page.get_by_role("option").filter(has_text="A sampled cell").click()
            seed = page.get_by_label("Seed", exact=True)
            expect(seed).to_have_value("0", timeout=CAPTION_TIMEOUT_MS)
            main = page.locator("[data-testid=stMain]")

            def scored_with(n: int) -> None:
                """Wait for the run with seed n to finish: explain's line comes last."""
                expect(main).to_contain_text(f"Read with hard attention in sample mode, seed {n}",
                                             timeout=CAPTION_TIMEOUT_MS)
                settled(page)
            scored_with(0)
            first = caption.inner_text()
            explained = page.get_by_text("Your caption · log-probability", exact=False)
            scored = explained.inner_text()
            page.get_by_role("button", name="Sample again").click()
            expect(seed).to_have_value("1", timeout=CAPTION_TIMEOUT_MS)
            scored_with(1)
            expect(page.locator("[data-testid=stSidebar]")).to_contain_text("Seed 1.")
            # Back to seed 0: the same caption and the same explained score as before.
            seed.fill("0")
            seed.press("Enter")
            expect(seed).to_have_value("0")
            scored_with(0)
            expect(caption).to_have_text(first)
            expect(explained).to_have_text(scored)
            page.get_by_role("button", name="Sample again").click()
            expect(seed).to_have_value("1", timeout=CAPTION_TIMEOUT_MS)
            scored_with(1)
            assert page.locator("[data-testid=stException]").count() == 0
            full_screenshot(page, tmp_path / "hard_sample.png")
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
