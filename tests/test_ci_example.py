"""The firmware CI recipe (examples/ci/memory-gate.yml): its check step's commands, run as the
workflow runs them (bash, `tvc` on PATH, the ELF at build/fw.elf), pass within budget, fail with
exit 4 and an annotation over it, and leave memory.json for the artifact step either way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import TVC

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.tools.boards import get_board
from compiler.tools.firmware import build_firmware

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "memory-gate.yml"


def _steps() -> dict[str, dict[str, object]]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = flow["jobs"]["memory"]["steps"]
    return {str(s.get("id") or s.get("name") or s.get("uses")): s for s in steps}


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A real firmware ELF for the F439: the bundled example linked with its probe main."""
    d = tmp_path_factory.mktemp("fw")
    out, _ = compile_model(
        CompileOptions(
            model=str(ROOT / "examples" / "mask_cnn.onnx"),
            target="stm32f439",
            out=str(d / "model"),
            calib="random",
        )
    )
    fw = build_firmware(out, load_model(out), get_board("stm32f439"))
    return fw.elf


def _run_check(repo: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(TVC).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True
    )


def test_workflow_keeps_the_json_even_when_the_gate_fails() -> None:
    steps = _steps()
    assert list(steps)[-1].startswith("Keep") and steps["Keep the figures"]["if"] == "always()"
    assert steps["Keep the figures"]["with"]["path"] == "memory.json"  # type: ignore[index]
    assert "tvc check build/fw.elf" in str(steps["check"]["run"]) and steps["build"]["run"]


def test_check_step_passes_within_budget_and_fails_with_exit_4_over_it(
    tmp_path: Path, firmware: Path
) -> None:
    script = str(_steps()["check"]["run"])
    repo = tmp_path / "repo"
    (repo / "build").mkdir(parents=True)
    shutil.copy(firmware, repo / "build" / "fw.elf")
    ok = _run_check(repo, script)
    assert ok.returncode == 0, ok.stderr
    report = json.loads((repo / "memory.json").read_text())
    assert report["over_budget"] == [] and report["ram_budget_bytes"] == 192 * 1024
    assert 0 < report["ram_bytes"] <= 192 * 1024 and 0 < report["flash_bytes"] <= 1 << 20
    # the same step with a budget the firmware cannot meet
    tight = script.replace("--ram 192k", "--ram 4k")
    assert tight != script
    over = _run_check(repo, tight)
    assert over.returncode == 4, (over.returncode, over.stderr)
    assert "::error title=memory budget::" in over.stdout
    report = json.loads((repo / "memory.json").read_text())
    assert report["over_budget"] and report["ram_budget_bytes"] == 4096
