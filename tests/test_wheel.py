"""A wheel installed outside the checkout works: built from this tree, installed into a fresh
venv, run from a directory that is not the checkout. It must carry the boards, the C kernels
and the templates as package data (importlib.resources), not read them from the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


def test_wheel_outside_the_checkout_compiles_and_runs_the_example(tmp_path: Path) -> None:
    # built from a copy of the sources: no stale build/ tree can lend the wheel its files
    src = tmp_path / "src"
    junk = shutil.ignore_patterns(
        ".venv", "build", "dist", ".git", "__pycache__", "*.egg-info", ".*_cache", "tests"
    )
    shutil.copytree(ROOT, src, ignore=junk)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", dist, src, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("tvc-*.whl")
    env = tmp_path / "fresh"
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    # tvc's own dependencies come from this venv's site-packages (a plain path entry: its
    # editable-install hook is not run, so `compiler` can only come from the wheel)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel,
         cwd=tmp_path)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(py, "-c", "import compiler; print(compiler.__file__)", cwd=work).stdout
    assert str(site) in where and str(ROOT) not in where, where
    shutil.copy(ROOT / "examples" / "mask_cnn.onnx", work)
    shutil.copy(ROOT / "examples" / "mask_sample.npy", work)
    tvc = [py, "-m", "compiler.cli"]
    boards = _run(*tvc, "boards", cwd=work).stdout
    assert "stm32f439" in boards and "mps2-an386" in boards
    _run(*tvc, "compile", "mask_cnn.onnx", "--target", "stm32f439", "--ram", "192k",
         "--calib", "random", "--out", "out", cwd=work)  # fmt: skip
    assert (work / "out" / "tvc_common.h").is_file() and (work / "out" / "mask_cnn.c").is_file()
    for engine in ("qemu", "int"):
        _run(*tvc, "run", "out", "--input", "mask_sample.npy", "--engine", engine,
             "--output", f"y_{engine}.npy", cwd=work)  # fmt: skip
    np.testing.assert_array_equal(np.load(work / "y_qemu.npy"), np.load(work / "y_int.npy"))
