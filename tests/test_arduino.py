"""`tvc compile --format arduino`: the bundled example as an Arduino library for the Nano 33 BLE
(nRF52840). No Arduino core can be downloaded here, so what can be checked is checked for real:
the layout and library.properties against the library specification's rules, src/ and the
example sketch cross-compiled warning-free with the nRF52840's flags (the sketch against the
minimal Arduino.h in tests/arduino/), the kernels' DSP paths kept, and the sketch itself run on
the Cortex-M4 twin in QEMU, where what it prints over Serial is bit-exact with the integer
reference, for the bundled sample and for bytes sent over Serial."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import compile_example, tvc

from compiler.codegen.emit import _env
from compiler.frontend.loader import load_model
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.tools.boards import get_board
from compiler.tools.firmware import _memory, extra_regions
from compiler.tools.host import STRICT
from compiler.tools.qemu import qemu_command

REPO = Path(__file__).resolve().parent.parent
SHIM = Path(__file__).with_name("arduino")
NAME = "mask_cnn"
# what the Arduino mbed core for the Nano 33 BLE compiles with (softfp ABI); the board file's
# flags (hard-float ABI) are the ones the twin runs
MBED_CORE = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16"]
CXX = ["-std=gnu++14", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]
WARN = ["-Wall", "-Wextra", "-Wconversion", "-Werror"]
CATEGORIES = {
    "Display",
    "Communication",
    "Signal Input/Output",
    "Sensors",
    "Device Control",
    "Timing",
    "Data Storage",
    "Data Processing",
    "Other",
}


def _compile_example(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return compile_example(out, "nrf52840", "--format", "arduino", *extra)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("arduino") / NAME
    r = _compile_example(out, "--zip", "--html")
    assert r.returncode == 0, r.stderr
    assert "arduino-cli lib install --zip-path" in r.stdout
    return out


def check_properties(text: str) -> dict[str, str]:
    """library.properties against the specification's rules, written here independently of
    tvc: key=value lines; the fields the Library Manager requires; the name, version, category,
    url and architectures formats."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        assert key not in fields, f"{key} given twice"
        fields[key] = value
    for key in (
        "name",
        "version",
        "author",
        "maintainer",
        "sentence",
        "paragraph",
        "category",
        "url",
        "architectures",
    ):
        assert fields.get(key, "").strip(), f"missing field {key}"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}", fields["name"]), fields["name"]
    assert not fields["name"].endswith(" ")
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", fields["version"])
    assert fields["category"] in CATEGORIES, fields["category"]
    assert re.fullmatch(r"https?://\S+", fields["url"]), fields["url"]
    for arch in fields["architectures"].split(","):
        assert re.fullmatch(r"\*|[a-z0-9_]+", arch.strip()), arch
    return fields


def check_layout(root: Path) -> None:
    """The 1.5 layout: library.properties, the C in src/ (nothing compilable in the root),
    every example in examples/<name>/<name>.ino."""
    fields = check_properties((root / "library.properties").read_text(encoding="utf-8"))
    src = root / "src"
    assert src.is_dir() and list(src.glob("*.c")) and list(src.glob("*.h"))
    for include in fields.get("includes", "").split(","):
        assert (src / include.strip()).is_file(), include
    assert not [p for p in root.iterdir() if p.suffix in (".c", ".cpp", ".h", ".S")]
    examples = list((root / "examples").iterdir())
    assert examples
    for ex in examples:
        assert (ex / f"{ex.name}.ino").is_file(), ex
    assert all(
        p.name in ("library.properties", "src", "examples", "extras") for p in root.iterdir()
    ), sorted(p.name for p in root.iterdir())


def test_layout_and_properties(library: Path) -> None:
    check_layout(library)
    fields = check_properties((library / "library.properties").read_text())
    assert fields["name"] == NAME
    assert fields["architectures"] == "mbed_nano,mbed,nrf52"
    assert fields["includes"] == f"{NAME}.h"
    assert not list((library / "src").glob("*.mk")) and not list((library / "src").glob("*.cmake"))
    assert (library / "extras/tvc/report.json").is_file()
    assert (library / "extras/tvc/report.html").is_file()  # --html: among the records


def test_zip_unpacks_to_the_layout(library: Path, tmp_path: Path) -> None:
    zpath = library.with_name(NAME + ".zip")
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        assert {n.split("/")[0] for n in names} == {NAME}  # one top folder, the library's name
        z.extractall(tmp_path)
    root = tmp_path / NAME
    check_layout(root)
    for f in library.rglob("*"):
        if f.is_file():
            assert (root / f.relative_to(library)).read_bytes() == f.read_bytes(), f


def test_zip_is_deterministic(library: Path, tmp_path: Path) -> None:
    again = tmp_path / NAME
    r = _compile_example(again, "--zip", "--html")
    assert r.returncode == 0, r.stderr
    first = library.with_name(NAME + ".zip").read_bytes()
    assert again.with_name(NAME + ".zip").read_bytes() == first


def _cc(cxx: bool = False) -> str:
    return "arm-none-eabi-g++" if cxx else "arm-none-eabi-gcc"


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, " ".join(cmd) + "\n" + r.stderr
    assert "warning" not in r.stderr, r.stderr


def _sketch_as_cpp(library: Path, work: Path) -> Path:
    """What arduino-cli does to a sketch: Arduino.h first, then the .ino as C++."""
    ino = library / "examples" / NAME / f"{NAME}.ino"
    cpp = work / f"{NAME}.ino.cpp"
    cpp.write_text(f'#include <Arduino.h>\n#line 1 "{ino}"\n' + ino.read_text())
    return cpp


def _objects(library: Path, work: Path, flags: list[str]) -> list[Path]:
    """src/ (C, strict C99 warnings) and the sketch (C++ against tests/arduino/Arduino.h)."""
    work.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{library / 'src'}", f"-I{library / 'examples' / NAME}", f"-I{SHIM}"]
    objs = []
    for src in sorted((library / "src").glob("*.c")):
        obj = work / f"{src.stem}.o"
        _run([_cc(), *flags, *STRICT, "-Os", *inc, "-c", str(src), "-o", str(obj)], work)
        objs.append(obj)
    cpp = _sketch_as_cpp(library, work)
    for src in (cpp, SHIM / "arduino_twin.cpp"):
        obj = work / f"{src.name}.o"
        _run([_cc(True), *flags, *CXX, *WARN, "-Os", *inc, "-c", str(src), "-o", str(obj)], work)
        objs.append(obj)
    return objs


def test_compiles_with_the_mbed_cores_flags_and_keeps_the_dsp_paths(
    library: Path, tmp_path: Path
) -> None:
    defs = subprocess.run(
        [_cc(), *MBED_CORE, "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True, text=True
    ).stdout
    assert "#define __ARM_FEATURE_DSP 1" in defs
    objs = _objects(library, tmp_path, MBED_CORE)
    dis = subprocess.run(
        ["arm-none-eabi-objdump", "-d", *map(str, objs)], capture_output=True, text=True
    ).stdout
    assert re.search(r"\bsmlad\b", dis) and re.search(r"\bsxtab16\b", dis), (
        "no SMLAD/SXTB16 in the library: the DSP kernels were not compiled in"
    )


def _twin_firmware(library: Path, work: Path) -> Path:
    board = get_board("nrf52840")
    objs = _objects(library, work, list(board.cflags))
    env = _env()
    startup = work / "startup.c"
    startup.write_text(env.get_template("startup.c.j2").render(board=board.name, fpu=True))
    obj = work / "startup.o"
    _run([_cc(), *board.cflags, *STRICT, "-Os", "-c", str(startup), "-o", str(obj)], work)
    fb, fs, rb, rs = _memory(board, emulate=True)
    (work / "link.ld").write_text(
        env.get_template("link.ld.j2").render(
            board=board.name,
            flash_base=fb,
            flash_size=fs,
            ram_base=rb,
            ram_size=rs,
            stack_size=4096,
            extra=extra_regions(board, True, rb + rs),
        )
    )
    elf = work / f"{NAME}.elf"
    _run(
        [
            _cc(),
            *board.cflags,
            "-T",
            str(work / "link.ld"),
            "--specs=nano.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            *map(str, objs),
            str(obj),
            "-o",
            str(elf),
        ],
        work,
    )
    return elf


def _serial(elf: Path, work: Path, rx: bytes | None) -> str:
    (work / "tvc_serial_in.bin").unlink(missing_ok=True)
    if rx is not None:
        (work / "tvc_serial_in.bin").write_bytes(rx)
    r = subprocess.run(
        qemu_command("mps2-an386", elf),
        cwd=work,
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return (work / "tvc_serial_out.txt").read_text()


def _bundled_sample(library: Path, graph) -> np.ndarray:  # type: ignore[no-untyped-def]
    text = (library / "examples" / NAME / f"{NAME}_sample.h").read_text()
    body = re.search(r"_sample_x\[\d+\] = \{(.*?)\};", text, re.S)
    assert body
    t = graph.tensors[graph.inputs[0]]
    values = np.array([int(v) for v in body.group(1).replace("\n", " ").split(",") if v.strip()])
    return values.astype(DTYPES[t.dtype]).reshape(t.shape)


def _check_printout(text: str, graph, x: np.ndarray, source: str) -> None:  # type: ignore[no-untyped-def]
    ref = run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]].reshape(-1)
    assert f"input: {source}" in text, text
    printed = [int(m) for m in re.findall(r"^  \d+: (-?\d+) \(", text, re.M)]
    assert printed == ref[: len(printed)].tolist() and printed, text
    q = graph.tensors[graph.outputs[0]].qparams
    reals = [float(m) for m in re.findall(r"^  \d+: -?\d+ \((-?[\d.]+)\)", text, re.M)]
    want = (ref[: len(reals)].astype(np.float64) - q.zero_point[0]) * q.scale[0]
    assert np.allclose(reals, want, atol=1e-4), (reals, want)
    assert re.search(rf"^argmax y: {int(np.argmax(ref))}\r?$", text, re.M), text
    h = 2166136261
    for b in ref.astype(np.int8).tobytes():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    assert re.search(rf"^fnv1a: {h:X}\r?$", text, re.M), (text, f"{h:X}")
    micros = int(re.search(r"micros per inference: (\d+)", text).group(1))  # type: ignore[union-attr]
    assert micros > 0


def test_example_sketch_runs_bit_exact_on_the_twin(library: Path, tmp_path: Path) -> None:
    graph = load_model(library)  # the compiled model, from extras/tvc/
    elf = _twin_firmware(library, tmp_path)
    sample = _bundled_sample(library, graph)
    _check_printout(_serial(elf, tmp_path, None), graph, sample, "bundled sample")
    rng = np.random.default_rng(7)
    sent = rng.integers(-128, 128, sample.shape).astype(np.int8)
    _check_printout(_serial(elf, tmp_path, sent.tobytes()), graph, sent, "Serial")


def test_row_reader_sketch_holds_no_frame_and_runs_bit_exact(tmp_path: Path) -> None:
    """--input-rows: the sketch's reader copies the rows the model asks for out of the bundled
    sample, or reads them off Serial as they are asked for; the board has no input buffer."""
    lib = tmp_path / NAME
    r = _compile_example(lib, "--input-rows")
    assert r.returncode == 0, r.stderr
    sketch = (lib / "examples" / NAME / f"{NAME}.ino").read_text()
    assert "tvc_in_x" not in sketch and "&tvc_rows_x" in sketch
    graph = load_model(lib)
    assert [n.op for n in graph.nodes].count("input_rows") > 1  # streamed from the reader
    elf = _twin_firmware(lib, tmp_path / "fw")
    sample = _bundled_sample(lib, graph)
    _check_printout(_serial(elf, tmp_path / "fw", None), graph, sample, "bundled sample")
    sent = np.random.default_rng(8).integers(-128, 128, sample.shape).astype(np.int8)
    _check_printout(_serial(elf, tmp_path / "fw", sent.tobytes()), graph, sent, "Serial")
    # a frame cut short over Serial ends the run with the reader's 1, and says so
    text = _serial(elf, tmp_path / "fw", sent.tobytes()[:5000])
    assert "mask_cnn_run failed: 1" in text, text


def test_tvc_reads_the_library_like_an_output_directory(library: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for engine in ("int", "qemu"):
        r = tvc(
            "run",
            library,
            "--input",
            tmp_path / "x.npy",
            "--engine",
            engine,
            "--output",
            tmp_path / f"{engine}.npy",
        )
        assert r.returncode == 0, r.stderr
        outs[engine] = np.load(tmp_path / f"{engine}.npy")
    assert np.array_equal(outs["int"], outs["qemu"])
    r = tvc("report", library)
    assert r.returncode == 0 and "nrf52840" in r.stdout, r.stderr


def test_clear_errors(tmp_path: Path) -> None:
    r = tvc(
        "compile",
        REPO / "examples/mask_cnn.onnx",
        "--target",
        "mps2-an386",
        "--calib",
        "random",
        "--format",
        "arduino",
        "--out",
        tmp_path / "x",
    )
    assert r.returncode == 2 and "has no Arduino core" in r.stderr, r.stderr
    r = tvc(
        "compile",
        REPO / "examples/mask_cnn.onnx",
        "--target",
        "nrf52840",
        "--calib",
        "random",
        "--zip",
        "--out",
        tmp_path / "y",
    )
    assert r.returncode == 2 and "--format arduino" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
