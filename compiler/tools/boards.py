"""Boards: one TOML file each in compiler/boards/ (CPU, flags, memory regions, emulator twin)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomllib

from compiler.errors import UsageError

BOARDS_DIR = Path(str(resources.files("compiler") / "boards"))  # package data


@dataclass(frozen=True)
class Region:
    name: str
    kind: str  # "flash" | "ram"
    base: int
    size: int
    dma: bool = True
    section: str = ""


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu: str
    fpu: str
    dsp: bool
    clock_hz: int
    cflags: tuple[str, ...]
    emulator: str
    memory: tuple[Region, ...] = field(default=())
    arduino: tuple[str, ...] = ()  # Arduino core architectures that build for this board

    def total(self, kind: str) -> int:
        return sum(r.size for r in self.memory if r.kind == kind)


def _load(path: Path) -> Board:
    d = tomllib.loads(path.read_text())
    regions = tuple(Region(**r) for r in d.pop("memory", []))
    d["cflags"] = tuple(d["cflags"])
    d["arduino"] = tuple(d.get("arduino", ()))
    return Board(memory=regions, **d)


def all_boards() -> dict[str, Board]:
    return {p.stem: _load(p) for p in sorted(BOARDS_DIR.glob("*.toml"))}


def get_board(name: str) -> Board:
    boards = all_boards()
    if name not in boards:
        raise UsageError(f"unknown board {name!r}", f"boards: {', '.join(boards)} (see tvc boards)")
    return boards[name]


def parse_size(text: str) -> int:
    """'192k', '2m', '196608' -> bytes."""
    t = text.strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    try:
        n = int(float(t[:-1] if mult > 1 else t) * mult)
    except (ValueError, OverflowError):
        raise UsageError(f"size {text!r}: expected e.g. 192k, 2m or 196608") from None
    if n <= 0:
        raise UsageError(f"size {text!r}: a budget is a positive number of bytes (e.g. 192k)")
    return n
