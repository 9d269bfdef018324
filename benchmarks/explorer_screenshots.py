"""Provides the explorer screenshots in ``docs/`` (run by hand, not in CI).

    python benchmarks/explorer_screenshots.py --ledger fedchain-demo/ledger.sqlite \\
        --models fedchain-demo/models --out docs/images [--chromium /usr/bin/chromium]

Starts ``fedchain explorer`` on the ledger, opens each main page in Debian's Chromium through
Playwright, and saves ``explorer-<page>.png`` (palette PNGs, a few tens of kilobytes); then
flips one byte of an entry in a copy of the ledger and saves its integrity page as
``explorer-tampered.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, MAX_HEIGHT = 1200, 1100


def _serve(ledger: Path, models: Path | None) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "fedchain.cli.main", "explorer", "--ledger", str(ledger),
            "--address", "127.0.0.1:0"]  # fmt: skip
    if models is not None:
        argv += ["--models", str(models)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[1].rstrip("/")


def _shoot(browser: object, url: str, target: Path) -> None:
    from PIL import Image  # matplotlib's dependency

    page = browser.new_page(viewport={"width": WIDTH, "height": 800})  # type: ignore[attr-defined]
    page.goto(url)
    height = min(page.evaluate("document.body.scrollHeight"), MAX_HEIGHT)
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.screenshot(path=str(target))
    page.close()
    image = Image.open(target).convert("RGB").quantize(colors=64)
    image.save(target, optimize=True)


def _tamper(ledger: Path, folder: Path) -> Path:
    copy = folder / "tampered.sqlite"
    shutil.copy(ledger, copy)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS entries_no_update")
        (body,) = conn.execute("SELECT body FROM entries WHERE seq = 5").fetchone()
        flipped = bytearray(body)
        flipped[len(flipped) // 2] ^= 0x01
        conn.execute("UPDATE entries SET body = ? WHERE seq = 5", (bytes(flipped),))
    conn.close()
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        proc, url = _serve(args.ledger, args.models)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            run = page.locator("tr[data-run]").first.get_attribute("data-run")
            page.close()
            for name, path in (("runs", "/"), ("run", f"/run/{run}"),
                               ("contributions", f"/run/{run}/contributions"),
                               ("lineage", f"/run/{run}/lineage"), ("integrity", "/integrity")):
                _shoot(browser, url + path, args.out / f"explorer-{name}.png")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        proc, url = _serve(_tamper(args.ledger, Path(tmp)), None)
        try:
            _shoot(browser, url + "/integrity", args.out / "explorer-tampered.png")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        browser.close()


if __name__ == "__main__":
    main()
