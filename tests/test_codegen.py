"""Generated C: bit-exact with the integer interpreter (and with tf.lite for imported models)
on the host, warning-free for gcc and arm-none-eabi-gcc, sanitizer-clean, deterministic."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tvc_models.keras_zoo import MODELS as KERAS_MODELS
from tvc_models.keras_zoo import build_tflite, reference_interpreter
from tvc_models.synthetic import mask_images
from tvc_models.zoo import MODEL_NAMES

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.ir.boundary import quantize_inputs, to_graph_layout
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.tools.host import STRICT, build_host, run_host

N_INPUTS = 32
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("calib")
    x, _ = mask_images(48, seed=21)
    np.save(d / "calib.npy", x[:32])
    np.save(d / "val.npy", x[32:])
    return d


def _compile(
    model: Path, out: Path, calib: Path | None, quant: str = "affine", bits: str = "8"
) -> Path:
    opts = CompileOptions(
        model=str(model),
        target="mps2-an386",  # 4 MB: these tests are about arithmetic, not about fitting a chip
        out=str(out),
        quant=quant,
        bits=bits,
        calib=str(calib / "calib.npy") if calib else None,
        val=str(calib / "val.npy") if calib else None,
    )
    return compile_model(opts)[0]


def _samples(
    graph, n: int, seed: int, structured: np.ndarray | None = None
) -> list[dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """Integer graph inputs: half quantized structured images, half uniformly random codes."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        feeds = {}
        for i in graph.inputs:
            t = graph.tensors[i]
            info = np.iinfo(DTYPES[t.dtype])
            if structured is not None and k % 2 == 0:
                feeds.update(
                    quantize_inputs(graph, to_graph_layout(graph, {i: structured[k : k + 1]}))
                )
            else:
                feeds[i] = rng.integers(info.min, info.max + 1, t.shape).astype(DTYPES[t.dtype])
        out.append(feeds)
    return out


def _assert_host_matches_interpreter(outdir: Path, structured: np.ndarray | None = None) -> None:
    graph = load_model(outdir)
    samples = _samples(graph, N_INPUTS, 5, structured)
    host = run_host(build_host(outdir, graph), graph, samples)
    for s, h in zip(samples, host, strict=True):
        ref = run_graph(graph, s)
        for o in graph.outputs:
            np.testing.assert_array_equal(h[o], ref[o], err_msg=f"{outdir.name}: {o}")


def _assert_builds_for_m4(outdir: Path, tmp_path: Path) -> None:
    cc = shutil.which("arm-none-eabi-gcc")
    assert cc, "arm-none-eabi-gcc missing: run ./setup.sh"
    for src in sorted(outdir.glob("*.c")):
        r = subprocess.run(
            [cc, *STRICT, *ARM_FLAGS, f"-I{outdir}", "-c", str(src), "-o", str(tmp_path / "x.o")],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, f"{src}:\n{r.stderr}"


@pytest.mark.parametrize("quant,bits", [("affine", "8"), ("seedot", "8"), ("seedot", "16")])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pytorch_models_host_c_is_bit_exact(
    exported, calib, tmp_path, name: str, quant: str, bits: str
) -> None:
    out = _compile(exported(name), tmp_path / name, calib, quant, bits)
    x, _ = mask_images(N_INPUTS, seed=9)
    _assert_host_matches_interpreter(out, x)


@pytest.mark.parametrize("quant,bits", [("affine", "8"), ("seedot", "16")])
def test_nearest_upsampling_fpn_is_bit_exact_and_builds_for_m4(
    exported, calib, tmp_path, quant: str, bits: str
) -> None:
    """nn.Upsample(mode="nearest") in a top-down feature path: float vs onnxruntime is covered
    in test_ops; here the integer C kernel must match the interpreter and build for the M4."""
    out = _compile(exported("fpn_detector"), tmp_path / "fpn", calib, quant, bits)
    graph = load_model(out)
    assert any(n.op == "resize_nearest" for n in graph.nodes)
    x, _ = mask_images(N_INPUTS, seed=9)
    _assert_host_matches_interpreter(out, x)
    _assert_builds_for_m4(out, tmp_path)


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("keras")
    paths = {}
    for name in KERAS_MODELS:
        paths[name] = d / f"{name}.tflite"
        paths[name].write_bytes(build_tflite(name))
    return paths


@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
def test_tflite_models_host_c_is_bit_exact_with_tflite(tflite_models, tmp_path, name: str) -> None:
    path = tflite_models[name]
    out = _compile(path, tmp_path / name, None)
    graph = load_model(out)
    interp = reference_interpreter(path.read_bytes())
    inp, outd = interp.get_input_details()[0], interp.get_output_details()[0]
    samples = _samples(graph, N_INPUTS, 6)
    host = run_host(build_host(out, graph), graph, samples)
    for s, h in zip(samples, host, strict=True):
        interp.set_tensor(inp["index"], s[graph.inputs[0]])
        interp.invoke()
        np.testing.assert_array_equal(h[graph.outputs[0]], interp.get_tensor(outd["index"]))
        np.testing.assert_array_equal(h[graph.outputs[0]], run_graph(graph, s)[graph.outputs[0]])


@pytest.fixture(scope="module")
def mixed_outputs(exported, calib, tmp_path_factory, tflite_models):  # type: ignore[no-untyped-def]
    """A few output directories covering every kernel: detector (softmax, hard-swish, concat),
    shufflenet (split, permute), seedot16 resnet, Keras activations (LUTs, pad, requantize)."""
    d = tmp_path_factory.mktemp("mixed")
    return [
        _compile(exported("detector"), d / "det", calib),
        _compile(exported("shufflenet_v2"), d / "shuf", calib),
        _compile(exported("resnet9"), d / "r16", calib, "seedot", "16"),
        _compile(exported("detector"), d / "det16", calib, "seedot", "16"),
        _compile(tflite_models["activations"], d / "act", None),
        _compile(tflite_models["dense"], d / "dense", None),
    ]


def test_generated_c_builds_warning_free_for_cortex_m4(mixed_outputs, tmp_path) -> None:
    for out in mixed_outputs:
        _assert_builds_for_m4(out, tmp_path)


def test_host_build_is_sanitizer_clean(mixed_outputs) -> None:
    for out in mixed_outputs:
        graph = load_model(out)
        samples = _samples(graph, 8, 7)
        host = run_host(build_host(out, graph, sanitize=True), graph, samples)
        for s, h in zip(samples, host, strict=True):
            for o in graph.outputs:
                np.testing.assert_array_equal(h[o], run_graph(graph, s)[o])


def test_two_models_link_into_one_firmware(mixed_outputs, tmp_path) -> None:
    """Every kernel symbol carries the model's prefix: two output directories link together."""
    a, b = mixed_outputs[0], mixed_outputs[2]
    ga, gb = load_model(a), load_model(b)
    main = tmp_path / "main.c"
    main.write_text(
        f'#include "{ga.name}.h"\n#include "{gb.name}.h"\n'
        f"static int8_t xa[{ga.name.upper()}_X_SIZE];\n"
        "int main(void) { return xa[0]; }\n"
    )
    objs = []
    for out in (a, b):
        for src in sorted(out.glob("*.c")):
            obj = tmp_path / f"{out.name}_{src.stem}.o"
            subprocess.run(
                ["gcc", *STRICT, "-O1", f"-I{out}", "-c", str(src), "-o", str(obj)], check=True
            )
            objs.append(str(obj))
    subprocess.run(
        ["gcc", *STRICT, f"-I{a}", f"-I{b}", str(main), *objs, "-o", str(tmp_path / "fw")],
        check=True,
    )


def test_compiling_twice_gives_identical_directories(exported, calib, tmp_path) -> None:
    for quant, bits in (("affine", "8"), ("seedot", "16")):
        one = _compile(exported("shufflenet_v2"), tmp_path / f"a_{bits}", calib, quant, bits)
        two = _compile(exported("shufflenet_v2"), tmp_path / f"b_{bits}", calib, quant, bits)
        names = sorted(p.name for p in one.iterdir())
        assert names == sorted(p.name for p in two.iterdir())
        match, mismatch, errors = filecmp.cmpfiles(one, two, names, shallow=False)
        assert not mismatch and not errors, mismatch


def test_exact_double_requantization_matches_ieee(tmp_path) -> None:
    """round_scaled_double (integers only) == C round() of the IEEE double product."""
    src = tmp_path / "t.c"
    runtime = Path(__file__).resolve().parent.parent / "compiler" / "runtime"
    src.write_text(
        '#include <stdio.h>\n#include <math.h>\n#include "tvc_common.h"\n'
        "int main(void) { long long acc, mant; int exp; double eff;\n"
        '  while (scanf("%lld %lld %d %lf", &acc, &mant, &exp, &eff) == 4) {\n'
        "    int a = TVC_FN(round_scaled_double)((int32_t)acc, (int64_t)mant, exp);\n"
        "    int b = (int)round((double)acc * eff);\n"
        '    if (a != b) { printf("%lld %d %d\\n", acc, a, b); return 1; } }\n  return 0; }\n'
    )
    exe = tmp_path / "t"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O2",
            f"-I{runtime}",
            str(src),
            str(runtime / "tvc_dense.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    from compiler.ir.ops.dense import _mantissa

    rng = np.random.default_rng(0)
    lines = []
    for _ in range(20000):
        eff = (
            float(np.float32(rng.uniform(1e-4, 0.2)))
            * float(np.float32(rng.uniform(1e-3, 0.05)))
            / float(np.float32(rng.uniform(0.01, 0.5)))
        )
        acc = int(rng.integers(-(2**24), 2**24))
        if rng.random() < 0.3:  # near-ties: acc * eff close to k + 0.5
            k = int(rng.integers(-200, 200))
            acc = int(round((k + 0.5) / eff)) if abs((k + 0.5) / eff) < 2**30 else acc
        m, e = _mantissa(eff)
        lines.append(f"{acc} {m} {e} {eff!r}")
    r = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
