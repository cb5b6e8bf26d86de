"""Headless Chromium (Debian's `chromium`) for the HTML report: a screenshot, the DOM as the
browser built it, and every console message the page caused. Used by the browser test tier
(tests/test_html_report.py) and by `python tools/browser.py` for the README's screenshots.

    python tools/browser.py OUTDIR_OR_HTML... --out docs/img   # one PNG per report
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# what a closed network and a root account need: no sandbox, no GPU, no background traffic
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? (.*)")


@dataclass
class Rendered:
    screenshot: Path
    dom: str  # the document as the browser parsed it (--dump-dom)
    console: list[str]  # console messages: script errors, CSP violations, failed loads


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, screenshot: Path, width: int = 1280, height: int = 3600) -> Rendered:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found: ./setup.sh --browser installs it")
    url = page.resolve().as_uri()
    console: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tvc-chromium-") as profile:
        common = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        shot = subprocess.run(
            [*common, f"--screenshot={screenshot}", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        dom = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
    for r in (shot, dom):
        if r.returncode != 0:
            raise RuntimeError(f"chromium failed ({r.returncode}): {r.stderr[-2000:]}")
        console += [m.group(1) for m in map(CONSOLE.search, r.stderr.splitlines()) if m]
    return Rendered(screenshot, dom.stdout, console)


def crop_to_content(png: Path, margin: int = 16) -> None:
    """Drop the blank window below the page, for README pictures."""
    img = Image.open(png).convert("RGB")
    grey = img.convert("L").point(lambda v: 255 if v < 250 else 0)
    box = grey.getbbox()
    if box:
        img = img.crop((0, 0, img.width, min(img.height, box[3] + margin)))
    img.quantize(colors=256).save(png, optimize=True)  # a palette keeps README pictures small


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path, help="report.html files or output directories")
    p.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from compiler.outdir import records_dir

    for r in a.reports:
        page = r if r.suffix == ".html" else records_dir(r) / "report.html"
        name = (r.parent if r.suffix == ".html" else r).name
        shot = a.out / f"report-{name}.png"
        result = render(page, shot)
        crop_to_content(shot)
        print(f"{shot}: {len(result.console)} console messages")
        for line in result.console:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
