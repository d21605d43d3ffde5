"""Many people at once: start the real server (`streamlit run app.py`) and drive N headless
Chromium pages at the same time (Playwright on Debian's /usr/bin/chromium), each uploading a
different photo. Every page must show the caption the library gives for its own photo.

    python -m benchmarks.many_users --sessions 8,16,32 [--checkpoint FILE] [--out results/x.json]
        [--profile prof.txt]

Reports per N: pages with the right caption, seconds from the first upload until the last
caption appeared, and the server's peak resident memory (read from /proc while it runs).
The photos are the app's four examples, each cropped, flipped and turned differently, so no
two pages upload the same file. tests/test_browser.py runs N = 4 through `drive_sessions`.
--profile samples all the server's threads with py-spy (`pip install py-spy`) while the pages
run and writes collapsed stacks (one file per N) for finding where the server's time goes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "captioner" / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
CHECKPOINT_ENV = "CAPTIONER_CHECKPOINT"


@dataclass
class SessionsResult:
    sessions: int
    correct: int
    seconds_to_last_caption: float
    server_peak_rss_mb: float
    server_cpu_s: float  # CPU time the server used meanwhile (all its threads)
    wrong: list[str]  # "photo: shown != expected" for each page that was wrong or timed out


def distinct_photos(count: int, folder: Path) -> list[Path]:
    """count different JPEGs made from the examples (crop, mirror, quarter turns)."""
    sources = sorted(EXAMPLES.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.open(sources[i % len(sources)]).convert("RGB")
        variant = i // len(sources)
        margin = 0.03 * (variant % 5)
        w, h = image.size
        image = image.crop((int(margin * w), int(margin * h), w - int(margin * w),
                            h - int(margin * h)))
        if variant % 2:
            image = ImageOps.mirror(image)
        image = image.rotate(90 * ((variant // 2) % 4), expand=True)
        path = folder / f"photo{i:02d}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: str | None, log: Path, timeout_s: float = 90
                 ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    if checkpoint:
        env[CHECKPOINT_ENV] = checkpoint
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}: "
                               f"{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"streamlit did not answer within {timeout_s} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakMemory:
    """Samples a process's RSS every 0.2 s in a thread; .peak is the largest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def _one_page(browser, url: str, photo: Path, timeout_ms: float) -> tuple[str, float]:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        await page.goto(url, timeout=timeout_ms)
        await page.locator("input[type=file]").wait_for(state="attached", timeout=timeout_ms)
        await page.locator("input[type=file]").set_input_files(str(photo))
        header = page.locator(".st-key-caption h2")
        await header.wait_for(timeout=timeout_ms)
        return (await header.inner_text()).strip(), time.monotonic()
    finally:
        await page.close()


async def _drive(url: str, photos: list[Path], timeout_ms: float) -> list[tuple[str, float]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=CHROMIUM_ARGS)
        try:
            results = await asyncio.gather(*(_one_page(browser, url, photo, timeout_ms)
                                             for photo in photos), return_exceptions=True)
        finally:
            await browser.close()
    return [r if isinstance(r, tuple) else (f"<{type(r).__name__}: {str(r)[:120]}>", 0.0)
            for r in results]


def drive_sessions(url: str, server_pid: int, photos: list[Path], expected: dict[Path, str],
                   timeout_s: float = 300) -> SessionsResult:
    """All pages at once; each must show expected[photo] for its own photo."""
    started, cpu_before = time.monotonic(), cpu_seconds(server_pid)
    with PeakMemory(server_pid) as memory:
        shown = asyncio.run(_drive(url, photos, timeout_s * 1000))
    cpu = cpu_seconds(server_pid) - cpu_before
    wrong = [f"{photo.name}: {text!r} != {expected[photo]!r}"
             for photo, (text, _) in zip(photos, shown) if text != expected[photo]]
    last = max((t for _, t in shown if t), default=started)
    return SessionsResult(len(photos), len(photos) - len(wrong), round(last - started, 2),
                          round(memory.peak, 1), round(cpu, 1), wrong)


def expected_captions(checkpoint: str | None, photos: list[Path]) -> dict[Path, str]:
    """What the app shows for each photo: the library's caption with the app's defaults."""
    from captioner import Captioner
    from captioner.options import DEFAULT_OPTIONS

    captioner = Captioner.from_checkpoint(checkpoint)
    texts = {}
    for photo in photos:
        caption = captioner.caption(photo, n_best=DEFAULT_OPTIONS.beam_size)[0]
        texts[photo] = caption.text or "(empty caption)"
    return texts


class ServerProfile:
    """py-spy sampling every thread of the server (collapsed stacks) while the pages run;
    a no-op without a path."""

    def __init__(self, pid: int, path: Path | None):
        self.pid, self.path, self.process = pid, path, None

    def __enter__(self) -> "ServerProfile":
        if self.path is not None:
            log = self.path.with_name(self.path.name + ".log")
            with open(log, "wb") as out:
                self.process = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(self.pid), "--rate", "200", "--threads",
                     "--format", "raw", "--nonblocking", "-o", str(self.path)],
                    stdout=out, stderr=subprocess.STDOUT)
            time.sleep(2)  # attached before the first page opens
            if self.process.poll() is not None:  # e.g. no ptrace permission in a container
                raise RuntimeError(f"py-spy could not sample the server: {log.read_text()[-800:]}")
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="8,16,32", help="comma-separated page counts")
    parser.add_argument("--checkpoint", help="model file (default: the shipped soft model)")
    parser.add_argument("--work", default="/tmp/many_users", help="photos and the server log")
    parser.add_argument("--out", help="also write the results here (JSON)")
    parser.add_argument("--profile", help="py-spy the server into this file (N appended)")
    args = parser.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy: pip install py-spy")
    from .common import machine

    counts = [int(n) for n in args.sessions.split(",")]
    work = Path(args.work)
    photos = distinct_photos(max(counts), work / "photos")
    expected = expected_captions(args.checkpoint, photos)
    print(f"machine: {machine()}; {len(set(expected.values()))} different captions expected")
    results = []
    for count in counts:  # a fresh server for each N, so one N's memory does not carry over
        server, url = start_server(args.checkpoint, work / f"server{count}.log")
        try:
            idle = rss_mb(server.pid)
            profile = Path(f"{args.profile}.{count}") if args.profile else None
            with ServerProfile(server.pid, profile):
                result = drive_sessions(url, server.pid, photos[:count], expected)
        finally:
            server.terminate()
            server.wait(timeout=30)
        results.append(result)
        print(f"N={count:3d}: {result.correct}/{count} pages showed their own photo's caption; "
              f"last caption after {result.seconds_to_last_caption:.1f} s; server RSS "
              f"{idle:.0f} MB idle, peak {result.server_peak_rss_mb:.0f} MB; server CPU "
              f"{result.server_cpu_s:.1f} s", flush=True)
        for line in result.wrong:
            print(f"  wrong: {line}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "date": time.strftime(
            "%Y-%m-%d"), "results": [asdict(r) for r in results]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
