"""The HTML report (`tvc compile --html`, `tvc report OUTDIR --html`): one self-contained page
with the memory timeline (one SVG element per planned buffer piece), budgets, layers (with the
instructions `tvc run --profile` stored) and accuracy, PNG figures beside it; rendered for real in
headless Chromium (the browser tier: ./setup.sh --browser installs it)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import compile_example, tvc
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import browser  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUF_ID = re.compile(r'id="memory-buf-(\d+)-(\d+)"')


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "mask_cnn"
    r = compile_example(out, "stm32f439", "--ram", "192k", "--html")
    assert r.returncode == 0, r.stderr
    assert "report.html" in r.stdout
    return out


def _pieces(report: dict) -> set[tuple[int, int]]:  # type: ignore[type-arg]
    return {
        (k, p) for k, b in enumerate(report["memory"]["buffers"]) for p in range(len(b["pieces"]))
    }


def test_memory_map_is_the_plan(outdir: Path) -> None:
    """The stored map: live bytes per step never exceed the arena, their maximum is the lower
    bound, and no two pieces live at the same step overlap."""
    mem = json.loads((outdir / "report.json").read_text())["memory"]
    assert max(mem["live_bytes"]) == mem["lower_bound_bytes"] <= mem["arena_bytes"]
    assert mem["live_bytes"][mem["peak_step"] + 1] == mem["lower_bound_bytes"]
    boxes = [
        (b["offset"] + lo, b["offset"] + hi, f, z)
        for b in mem["buffers"]
        if b["region"] == 0
        for lo, hi, f, z in b["pieces"]
    ]
    for i, (a0, a1, af, az) in enumerate(boxes):
        assert a1 <= mem["arena_bytes"]
        for b0, b1, bf, bz in boxes[i + 1 :]:
            assert not (a0 < b1 and b0 < a1 and af <= bz and bf <= az), (a0, a1, b0, b1)
    assert any(s["band"] is not None for s in mem["steps"])  # the example has a patch stage


def test_page_is_self_contained_with_one_element_per_buffer(outdir: Path) -> None:
    page = (outdir / "report.html").read_text()
    report = json.loads((outdir / "report.json").read_text())
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched
    assert page.count("<svg") == 3
    assert {(int(a), int(b)) for a, b in BUF_ID.findall(page)} == _pieces(report)
    for key in ("memory", "budget", "layers"):
        img = Image.open(outdir / f"report-{key}.png")
        assert img.width > 600 and len(img.convert("RGB").getcolors(1 << 20) or ()) > 10


def test_profile_adds_instructions_per_layer(outdir: Path, tmp_path: Path) -> None:
    r = tvc(
        "run", outdir, "--input", REPO / "examples/mask_sample.npy", "--engine", "qemu", "--profile"
    )
    assert r.returncode == 0, r.stderr
    profile = json.loads((outdir / "profile.json").read_text())
    assert profile["board"] == "stm32f439" and profile["instructions"] > 0
    per_step = sum(s["instructions"] for s in profile["steps"])
    assert abs(per_step - profile["instructions"]) <= 0.02 * profile["instructions"]
    dest = tmp_path / "page" / "r.html"
    r = tvc("report", outdir, "--html", dest)
    assert r.returncode == 0, r.stderr
    page = dest.read_text()
    assert "<th>instructions</th>" in page.replace(' class=""', "")
    cells = re.findall(r"<tr><td>\d*</td>.*?</tr>", page)
    listed = sum(int(re.findall(r"<td>([\d,]+)</td>", c)[-1].replace(",", "")) for c in cells)
    assert listed == per_step  # every step's instructions land in exactly one layer's row
    assert (tmp_path / "page" / "r-memory.png").is_file()
    again = tmp_path / "again.html"
    assert tvc("report", outdir, "--html", again).returncode == 0
    assert again.read_text() == page  # deterministic


def test_clear_errors(tmp_path: Path, outdir: Path) -> None:
    r = tvc("report", tmp_path, "--html")
    assert r.returncode == 2 and "no report.json" in r.stderr
    old = tmp_path / "old"
    old.mkdir()
    report = json.loads((outdir / "report.json").read_text())
    del report["memory"]
    (old / "report.json").write_text(json.dumps(report))
    r = tvc("report", old, "--html")
    assert r.returncode == 2 and "compile the model again" in r.stderr, r.stderr


def _not_blank(png: Path) -> float:
    """The share of the screenshot that is not page background."""
    img = np.asarray(Image.open(png).convert("L"))
    return float((img < 240).mean())


@pytest.mark.browser
def test_renders_in_chromium(outdir: Path, tmp_path: Path) -> None:
    if browser.chromium() is None:
        pytest.skip("chromium not installed: ./setup.sh --browser (./test.sh does it)")
    report = json.loads((outdir / "report.json").read_text())
    shown = browser.render(outdir / "report.html", tmp_path / "shot.png")
    assert shown.console == [], shown.console
    assert _not_blank(shown.screenshot) > 0.05
    assert {(int(a), int(b)) for a, b in BUF_ID.findall(shown.dom)} == _pieces(report)
    assert shown.dom.count("<svg") == 3
    # the checks can fail: a blank page and a page with a script error are caught
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert _not_blank(browser.render(blank, tmp_path / "blank.png").screenshot) < 0.001
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>nosuch();</script></body></html>")
    assert browser.render(broken, tmp_path / "broken.png").console
