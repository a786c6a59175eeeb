"""Check that JupyterLab serves a course notebook and that a browser renders it with figures.

Starts JupyterLab on 127.0.0.1 with the solved notebooks (they hold outputs), fetches a
notebook through the server's API, then loads it in headless Chromium and checks the page's
DOM for the notebook's cells and rendered figures; writes a screenshot.

    apt-get install chromium        # Debian's package; chromium-headless-shell works too
    .venv/bin/python tools/check_jupyterlab.py [--notebook 01_data_and_metrics.ipynb]

Exits 0 when all checks pass, 1 with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def browser_args(browser: str, profile: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--window-size=1300,2200",
            "--virtual-time-budget=30000"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebook", default="01_data_and_metrics.ipynb")
    parser.add_argument("--screenshot", default="benchmarks/jupyterlab.png")
    args = parser.parse_args()
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        print("no Chromium found; install it with: apt-get install chromium")
        return 1
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT / 'solutions'}",
         "--allow-root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/status?token={token}", 60)
        model = json.loads(wait_for(f"{base}/api/contents/{args.notebook}?token={token}", 10))
        cells = model["content"]["cells"]
        code_cells = sum(c["cell_type"] == "code" for c in cells)
        print(f"served {args.notebook}: {len(cells)} cells")
        url = f"{base}/lab/tree/{args.notebook}?token={token}"
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(browser_args(browser, profile) + ["--dump-dom", url],
                                 capture_output=True, text=True, timeout=180).stdout
        with tempfile.TemporaryDirectory() as profile:
            shot = (ROOT / args.screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(browser_args(browser, profile) + [f"--screenshot={shot}", url],
                           capture_output=True, timeout=180)
        checks = {
            "the notebook panel": "jp-NotebookPanel" in dom,
            "code cells": dom.count("jp-CodeCell") >= code_cells // 2,  # off-screen ones: lazy
            "rendered figures": 'src="data:image/png' in dom,  # matplotlib outputs
            "the notebook's title": "Data and metrics" in dom,
            "a screenshot": shot.exists() and shot.stat().st_size > 10_000,
        }
        for what, ok in checks.items():
            print(f"{'ok ' if ok else 'MISSING'} {what}")
        print(f"screenshot: {shot}")
        return 0 if all(checks.values()) else 1
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
