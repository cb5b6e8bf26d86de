"""Golden IR-text tests for the passes, FileCheck style: each tests/golden/*.ir file holds an
input graph in the IR text form, a `// RUN: <pass>` line, and `// CHECK:` (a later line has
this), `// CHECK-NEXT:` (the very next line has this) and `// CHECK-NOT:` (no line between the
previous and the next match has this) lines for the printed result. `{{regex}}` inside a
pattern is a regular expression; the rest is literal."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.ir.graph import Graph
from compiler.ir.text import parse_graph, print_graph
from compiler.ir.verify import verify
from compiler.passes.canonicalize import canonicalize
from compiler.passes.layout import to_nhwc
from compiler.passes.schedule import fuse_patchwise, schedule

GOLDEN = Path(__file__).parent / "golden"
PASSES: dict[str, Callable[[Graph], Graph]] = {
    "canonicalize": canonicalize,
    "layout": to_nhwc,
    "schedule": lambda g: fuse_patchwise(schedule(g)),
}


def _regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{\{(.*?)\}\}", pattern.strip())
    return re.compile("".join(p if k % 2 else re.escape(p) for k, p in enumerate(parts)))


def filecheck(text: str, checks: list[tuple[str, str]]) -> None:
    """Raise AssertionError naming the first check that fails."""
    lines = text.splitlines()
    pos = 0  # the next line a CHECK may match
    pending_not: list[str] = []

    def settle_nots(upto: int) -> None:
        for pat in pending_not:
            for k in range(pos, upto):
                assert not _regex(pat).search(lines[k]), f"CHECK-NOT: {pat!r} at: {lines[k]}"
        pending_not.clear()

    for kind, pat in checks:
        rx = _regex(pat)
        if kind == "CHECK-NOT":
            pending_not.append(pat)
        elif kind == "CHECK-NEXT":
            assert pos < len(lines) and rx.search(lines[pos]), (
                f"CHECK-NEXT: {pat!r} is not on the next line: "
                f"{lines[pos] if pos < len(lines) else '<end>'}\n{text}"
            )
            settle_nots(pos)
            pos += 1
        else:
            hit = next((k for k in range(pos, len(lines)) if rx.search(lines[k])), None)
            assert hit is not None, f"CHECK: {pat!r} not found after line {pos}\n{text}"
            settle_nots(hit)
            pos = hit + 1
    settle_nots(len(lines))


def _cases() -> list[Path]:
    return sorted(GOLDEN.glob("*.ir"))


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    source = path.read_text()
    run = re.search(r"^// RUN: (\w+)", source, re.M)
    assert run, f"{path.name}: no // RUN: line"
    checks = re.findall(r"^// (CHECK(?:-NEXT|-NOT)?): (.*)$", source, re.M)
    assert checks, f"{path.name}: no CHECK lines"
    graph = parse_graph(source, str(path))
    verify(graph, "parse")
    out = PASSES[run.group(1)](graph)
    verify(out, run.group(1))
    filecheck(print_graph(out, full=True), checks)


def test_filecheck_fails_when_it_should() -> None:
    text = "a 1\nb 2\nc 3\n"
    filecheck(text, [("CHECK", "a {{[0-9]}}"), ("CHECK-NEXT", "b"), ("CHECK-NOT", "x")])
    for checks in (
        [("CHECK", "z")],
        [("CHECK", "a"), ("CHECK-NEXT", "c")],
        [("CHECK", "a"), ("CHECK-NOT", "b"), ("CHECK", "c")],
        [("CHECK", "b"), ("CHECK", "a")],
    ):
        with pytest.raises(AssertionError):
            filecheck(text, checks)
