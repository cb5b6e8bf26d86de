"""What a linked ELF costs: flash and RAM by section (as arm-none-eabi-size counts them), by
symbol, and the stack depth of a call tree from gcc's -fcallgraph-info=su output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from compiler.errors import UsageError

UNKNOWN_FRAME = 32  # library functions without stack information (memcpy, memmove)


@dataclass
class ElfUsage:
    text: int  # arm-none-eabi-size "text": allocated, non-writable sections
    data: int  # allocated, writable, with contents (in flash and RAM)
    bss: int  # allocated, writable, no contents (RAM only)
    sections: dict[str, tuple[int, int]]  # name -> (address, size)
    symbols: dict[str, tuple[int, int, str]] = field(
        default_factory=dict
    )  # name -> (addr, size, kind)

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    @property
    def stack(self) -> int:
        """The stack the link reserves, when it is a section (tvc's probe, many vendor scripts)."""
        return sum(size for name, (_, size) in self.sections.items() if "stack" in name.lower())

    def by_region(self, regions: list[tuple[str, int, int]]) -> dict[str, int]:
        """Bytes of allocated sections per memory region (name, base, size) by address."""
        out = {name: 0 for name, _, _ in regions}
        for addr, size in self.sections.values():
            for name, base, length in regions:
                if base <= addr < base + length:
                    out[name] += size
        return out

    def share(self, prefix: str) -> dict[str, int]:
        """Bytes of code, read-only data and RAM in symbols starting with `prefix`."""
        out = {"code": 0, "const": 0, "ram": 0}
        seen: set[tuple[int, int]] = set()
        for name, (addr, size, kind) in self.symbols.items():
            # GCC merges identical functions (-fipa-icf): several names, one copy of the bytes
            if name.startswith(prefix) and (addr, size) not in seen:
                seen.add((addr, size))
                out[kind] += size
        return out


def read_elf(path: Path) -> ElfUsage:
    try:
        f = path.open("rb")
        elf = ELFFile(f)
    except Exception as e:
        raise UsageError(f"{path}: not an ELF file ({e})") from None
    with f:
        text = data = bss = 0
        sections = {}
        for s in elf.iter_sections():
            flags = s["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or s["sh_size"] == 0:
                continue
            sections[s.name] = (s["sh_addr"], s["sh_size"])
            if s["sh_type"] == "SHT_NOBITS":
                bss += s["sh_size"]
            elif flags & SH_FLAGS.SHF_WRITE:
                data += s["sh_size"]
            else:
                text += s["sh_size"]
        symbols: dict[str, tuple[int, int, str]] = {}
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            by_addr = sorted(sections.items(), key=lambda kv: kv[1][0])
            for sym in symtab.iter_symbols():
                size = sym["st_size"]
                if size == 0 or sym["st_info"]["type"] not in ("STT_FUNC", "STT_OBJECT"):
                    continue
                addr = sym["st_value"]
                sec = next((n for n, (a, sz) in by_addr if a <= addr < a + sz), "")
                kind = (
                    "code"
                    if sym["st_info"]["type"] == "STT_FUNC"
                    else ("const" if sec in (".rodata", ".text") else "ram")
                )
                symbols[sym.name] = (addr, size, kind)
    return ElfUsage(text, data, bss, sections, symbols)


_NODE = re.compile(r'node:\s*\{\s*title:\s*"([^"]+)"\s*label:\s*"([^"]*)"')
_EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]+)"\s*targetname:\s*"([^"]+)"')
_BYTES = re.compile(r"(\d+) bytes")


def call_graph(ci_files: list[Path]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Frame size per function and call edges from gcc's .ci files (VCG)."""
    frames: dict[str, int] = {}
    edges: dict[str, set[str]] = {}
    for f in ci_files:
        text = f.read_text()
        for title, label in _NODE.findall(text):
            m = _BYTES.search(label)
            if m:
                frames[title] = int(m.group(1))
        for src, dst in _EDGE.findall(text):
            edges.setdefault(src, set()).add(dst)
    return frames, edges


def stack_depth(root: str, frames: dict[str, int], edges: dict[str, set[str]]) -> int:
    """Deepest frame sum along calls from `root` (tvc's code has no recursion)."""
    memo: dict[str, int] = {}

    def depth(fn: str, seen: frozenset[str]) -> int:
        if fn in memo:
            return memo[fn]
        if fn in seen:
            raise ValueError(f"recursion through {fn}")
        below = max((depth(c, seen | {fn}) for c in edges.get(fn, ())), default=0)
        memo[fn] = frames.get(fn, UNKNOWN_FRAME) + below
        return memo[fn]

    return depth(root, frozenset())
