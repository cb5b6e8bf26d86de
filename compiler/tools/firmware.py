"""The probe firmware: the model's output directory + startup + a main, linked for a board (to
measure what the firmware pays) or for its emulator twin (to run under QEMU)."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compiler.codegen.cmsis import build_cmsis_objects, cmsis_root, uses_cmsis
from compiler.codegen.emit import _env, io_context
from compiler.errors import TvcError
from compiler.ir.graph import Graph
from compiler.outdir import source_dir
from compiler.passes.plan import plan_arena
from compiler.tools.boards import Board, get_board
from compiler.tools.elf import ElfUsage, call_graph, read_elf, stack_depth
from compiler.tools.host import STRICT
from compiler.tools.toolchain import arm_gcc

STACK_MARGIN = 128  # exception frame + semihosting call, beyond the measured call tree
OPT = "-O2"


class LinkOverflow(TvcError):
    """The firmware does not fit the board's physical memory (the linker says by how much)."""


@dataclass
class Firmware:
    elf: Path
    usage: ElfUsage
    model_stack: int  # deepest call tree under <name>_run
    main_stack: int  # reserved for the whole probe


def _memory(board: Board, emulate: bool) -> tuple[int, int, int, int]:
    """(flash base, flash size, ram base, ram size): the board's sizes; on the emulator twin,
    the twin's addresses (so QEMU runs it) but still the board's sizes (so it fails like the
    board would)."""
    flash = next(r for r in board.memory if r.kind == "flash")
    ram = next(r for r in board.memory if r.kind == "ram" and r.section == ".bss")
    if not emulate:
        return flash.base, flash.size, ram.base, ram.size
    twin = get_board(board.emulator)
    tf = next(r for r in twin.memory if r.kind == "flash")
    tr = next(r for r in twin.memory if r.kind == "ram")
    return tf.base, min(flash.size, tf.size), tr.base, min(ram.size, tr.size)


def extra_regions(board: Board, emulate: bool, after: int) -> list[dict[str, object]]:
    """The board's other RAM regions (CCM, DTCM, ...); on the emulator twin, laid out in the
    twin's RAM right after the main region so QEMU can run what the board would."""
    out = []
    base = (after + 0xFFFF) // 0x10000 * 0x10000
    for r in board.memory:
        if r.kind != "ram" or r.section == ".bss":
            continue
        out.append(
            {
                "name": r.name,
                "base": base if emulate else r.base,
                "size": r.size,
                "section": r.section,
            }
        )
        base += r.size
    return out


def build_firmware(
    outdir: Path,
    graph: Graph,
    board: Board,
    emulate: bool = False,
    extra_sources: tuple[Path, ...] = (),
    profile: bool = False,
) -> Firmware:
    outdir = source_dir(outdir.resolve())
    extra_sources = tuple(p.resolve() for p in extra_sources)
    name = graph.name
    plan = plan_arena(graph)
    env = _env()
    ctx = {
        **io_context(graph, plan, name),
        "board": board.name,
        "fpu": bool(board.fpu),
        "n_steps": max(len(graph.nodes), 1),
    }
    main_c = env.get_template("probe_main.c.j2").render(ctx)
    startup_c = env.get_template("startup.c.j2").render(ctx)
    fb, fs, rb, rs = _memory(board, emulate)
    h = hashlib.sha256(
        f"{board}{emulate}{OPT}{profile}".encode() + main_c.encode() + startup_c.encode()
    )
    for f in sorted([*outdir.glob("*.c"), *outdir.glob("*.h")]) + list(extra_sources):
        h.update(f.name.encode() + f.read_bytes())
    work = Path(tempfile.gettempdir()) / "tvc-fw" / h.hexdigest()[:16]
    elf = work / f"{name}.elf"
    work.mkdir(parents=True, exist_ok=True)
    (work / "probe_main.c").write_text(main_c)
    (work / "startup.c").write_text(startup_c)
    cc = arm_gcc()
    flags = [*board.cflags, *STRICT, OPT, "-ffunction-sections", "-fdata-sections"]
    if profile:
        flags.append("-DTVC_PROFILE")
    includes = [f"-I{outdir}"]
    if uses_cmsis(outdir):
        includes.append(f"-I{cmsis_root() / 'Include'}")
    objs, cis = [], []
    for src in [
        *sorted(outdir.glob("*.c")),
        work / "probe_main.c",
        work / "startup.c",
        *extra_sources,
    ]:
        obj = work / f"{src.stem}.o"
        cmd = [
            cc,
            *flags,
            "-fstack-usage",
            "-fcallgraph-info=su",
            *includes,
            "-c",
            str(src),
            "-o",
            str(obj),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        if r.returncode != 0:
            raise TvcError(
                f"cross-compiling {src.name} for {board.name} failed:\n{r.stderr.strip()[:3000]}"
            )
        objs.append(str(obj))
        cis.append(work / f"{src.stem}.ci")
    if uses_cmsis(outdir):
        lib, lib_cis, include = build_cmsis_objects(
            cc,
            [
                *board.cflags,
                "-std=gnu11",
                OPT,
                "-w",
                "-ffunction-sections",
                "-fdata-sections",
                "-fstack-usage",
                "-fcallgraph-info=su",
            ],
            work.parent,
        )
        objs += lib
        cis += lib_cis
    frames, edges = call_graph([c for c in cis if c.exists()])
    model_stack = stack_depth(f"{name}_run", frames, edges)
    main_stack = stack_depth("main", frames, edges) + STACK_MARGIN
    ld = env.get_template("link.ld.j2").render(
        board=board.name,
        flash_base=fb,
        flash_size=fs,
        ram_base=rb,
        ram_size=rs,
        stack_size=(main_stack + 7) // 8 * 8,
        extra=extra_regions(board, emulate, rb + rs),
    )
    (work / "link.ld").write_text(ld)
    cmd = [
        cc,
        *board.cflags,
        OPT,
        "-T",
        str(work / "link.ld"),
        "--specs=nano.specs",
        "-nostartfiles",
        "-Wl,--gc-sections",
        *objs,
        "-o",
        str(elf),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    if r.returncode != 0:
        if "overflowed" in r.stderr or "will not fit" in r.stderr:
            lines = [ln.split("ld: ", 1)[-1] for ln in r.stderr.splitlines() if "overflowed" in ln]
            raise LinkOverflow("; ".join(lines) or r.stderr.strip()[:500])
        raise TvcError(f"linking failed for {board.name}:\n{r.stderr.strip()[:3000]}")
    return Firmware(elf, read_elf(elf), model_stack, main_stack)
