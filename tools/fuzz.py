"""Mutation fuzzer for tvc's front end: every mutant of a small ONNX or int8 TFLite model goes
through import -> passes -> quantize in this process, and each outcome is classified:

- compiled: the pipeline accepted the mutant (it is still a valid model);
- clean: a TvcError (a message naming file, node or tensor; exit 2/3/4 in the CLI);
- internal: any other exception (the CLI would say "internal error": a bug to fix);
- hang: more than --timeout seconds (default 20);
- memory: more than 2 GB of extra address space (MemoryError under RLIMIT_AS).

Mutations: ONNX structurally (dims of inputs and initializers, attributes dropped or set to
0, negative or huge values, initializers' shape / dtype / values incl. NaN and Inf, op types
swapped, dangling and duplicate names, empty names, cycles, opsets, shapes of 10^9 elements)
and bytes of the ONNX and TFLite files (flips, interesting 32-bit values, truncation, chunks
cut or repeated). A mutant is a pure function of (seed model, mutation seed): a report line
names both, and `--replay MODEL:SEED` runs one again.

    .venv/bin/python tools/fuzz.py --count 10000 [--seed 0] [--jobs 2] [--json out.json]

The seed models are built at start (the TFLite ones in a subprocess with TensorFlow, cached
under build/fuzz-seeds), so no model file is committed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.compile import CompileOptions, run_pipeline  # noqa: E402
from compiler.errors import TvcError  # noqa: E402

OUTCOMES = ("compiled", "clean", "internal", "hang", "memory")
TFLITE_SEEDS = ("conv", "depthwise", "add_concat", "pools")
SEED_DIR = ROOT / "build" / "fuzz-seeds"


# --- seed models -------------------------------------------------------------------------------


def onnx_seeds() -> dict[str, bytes]:
    """Small float models over the ops the importer handles most: conv, pools, add, concat,
    reshape glue, gemm."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    def model(nodes: list, inits: dict[str, np.ndarray], shape: list[int]) -> bytes:
        g = helper.make_graph(
            nodes,
            "seed",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in inits.items()],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    cnn = model(
        [
            helper.make_node(
                "Conv",
                ["x", "w1", "b1"],
                ["c1"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[2, 2],
                name="conv1",
            ),
            helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            helper.make_node(
                "MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"
            ),
            helper.make_node(
                "Conv",
                ["p1", "w2"],
                ["c2"],
                kernel_shape=[3, 3],
                group=8,
                pads=[1, 1, 1, 1],
                name="dw2",
            ),
            helper.make_node("Add", ["c2", "p1"], ["a2"], name="add2"),
            helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1, name="fc"),
        ],
        {"w1": w(8, 3, 3, 3), "b1": w(8), "w2": w(8, 1, 3, 3), "fc": w(4, 8), "fb": w(4)},
        [1, 3, 16, 16],
    )
    glue = model(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1], name="pw"),
            helper.make_node("Sigmoid", ["c1"], ["s1"], name="sig"),
            helper.make_node("Concat", ["c1", "s1"], ["cat"], axis=1, name="cat"),
            helper.make_node(
                "AveragePool", ["cat"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="avg"
            ),
            helper.make_node("Shape", ["ap"], ["shp"], name="shape"),
            helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0, name="gather"),
            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
            helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="tcat"),
            helper.make_node("Reshape", ["ap", "target"], ["flat"], name="reshape"),
            helper.make_node("MatMul", ["flat", "mm"], ["mmo"], name="matmul"),
            helper.make_node("Softmax", ["mmo"], ["y"], axis=-1, name="softmax"),
        ],
        {
            "w1": w(4, 2, 1, 1),
            "zero": np.array(0, np.int64),
            "axes": np.array([0], np.int64),
            "minus1": np.array([-1], np.int64),
            "mm": w(8 * 4 * 4, 3),
        },
        [1, 2, 8, 8],
    )
    return {"onnx_cnn": cnn, "onnx_glue": glue}


def tflite_seeds() -> dict[str, bytes]:
    """Int8 Keras models from tools/tvc_models (built once with TensorFlow, in a subprocess so
    that this process stays small enough for its memory limit)."""
    SEED_DIR.mkdir(parents=True, exist_ok=True)
    missing = [n for n in TFLITE_SEEDS if not (SEED_DIR / f"{n}.tflite").is_file()]
    if missing:
        code = (
            "import sys; sys.path.insert(0, 'tools'); from pathlib import Path;"
            "from tvc_models.keras_zoo import build_tflite;"
            f"[Path('{SEED_DIR}/' + n + '.tflite').write_bytes(build_tflite(n)) for n in {missing}]"
        )
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return {f"tflite_{n}": (SEED_DIR / f"{n}.tflite").read_bytes() for n in TFLITE_SEEDS}


# --- mutations ---------------------------------------------------------------------------------

INTERESTING = [0, 1, -1, 2, 3, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, -(2**31), 10**9]


def mutate_bytes(blob: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(blob)
    for _ in range(int(rng.integers(1, 4))):
        # mostly in-place changes: truncating or shifting the file mostly tests one check
        kind = int(rng.choice(5, p=[0.45, 0.4, 0.04, 0.06, 0.05]))
        at = int(rng.integers(0, max(len(b), 1)))
        if kind == 0:  # flip bits
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # an interesting 32-bit value at an aligned offset
            at -= at % 4
            if at + 4 <= len(b):
                v = int(rng.choice(INTERESTING)) & 0xFFFFFFFF
                b[at : at + 4] = v.to_bytes(4, "little")
        elif kind == 2:  # truncate
            del b[max(at, 8) :]
        elif kind == 3:  # cut a chunk
            del b[at : at + int(rng.integers(1, 64))]
        else:  # repeat a chunk
            b[at:at] = b[at : at + int(rng.integers(1, 64))]
    return bytes(b)


def _pick(rng: np.random.Generator, seq: list) -> object:  # type: ignore[type-arg]
    return seq[int(rng.integers(0, len(seq)))] if seq else None


def mutate_onnx(blob: bytes, rng: np.random.Generator) -> bytes:
    m = onnx.load_from_string(blob)
    g = m.graph
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(0, 12))
        node = _pick(rng, list(g.node))
        init = _pick(rng, list(g.initializer))
        if kind == 0 and g.input:  # an input dim
            dims = g.input[0].type.tensor_type.shape.dim
            d = _pick(rng, list(dims))
            if d is not None:
                d.dim_value = int(rng.choice([0, 1, 2, 7, 10**9, 3]))
        elif kind == 1 and node is not None and node.attribute:  # drop an attribute
            node.attribute.remove(_pick(rng, list(node.attribute)))
        elif kind == 2 and node is not None and node.attribute:  # an attribute's value
            a = _pick(rng, list(node.attribute))
            v = int(rng.choice([0, -1, 1, 3, 1000, 10**9]))
            if a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[int(rng.integers(0, len(a.ints)))] = v
            elif a.type == onnx.AttributeProto.INT:
                a.i = v
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([np.nan, np.inf, -1.0, 0.0]))
        elif kind == 3 and init is not None:  # an initializer's dims
            if init.dims:
                init.dims[int(rng.integers(0, len(init.dims)))] = int(rng.choice([0, 1, 5, 10**9]))
            else:
                init.dims.append(3)
        elif kind == 4 and init is not None:  # values: NaN, Inf, huge
            a = numpy_helper.to_array(init).copy()
            if a.size and a.dtype.kind == "f":
                a.reshape(-1)[int(rng.integers(0, a.size))] = rng.choice([np.nan, np.inf, 1e38])
                init.CopyFrom(numpy_helper.from_array(a, init.name))
        elif kind == 5 and init is not None:  # dtype
            init.data_type = int(
                rng.choice(
                    [TensorProto.INT8, TensorProto.DOUBLE, TensorProto.STRING, TensorProto.BOOL, 99]
                )
            )
        elif kind == 6 and node is not None:  # op type
            node.op_type = str(
                rng.choice(["Relu", "Conv", "Add", "Reshape", "Nope", "Softmax", "MaxPool", "Gemm"])
            )
        elif kind == 7 and node is not None and node.input:  # a dangling or empty input
            node.input[int(rng.integers(0, len(node.input)))] = str(rng.choice(["", "ghost"]))
        elif kind == 8 and node is not None and len(g.node) > 1:  # duplicate an output name
            other = _pick(rng, [n for n in g.node if n is not node])
            node.output[0] = other.output[0]
        elif kind == 9 and node is not None and len(g.node) > 2:  # a cycle
            later = g.node[len(g.node) - 1]
            node.input.append(later.output[0])
        elif kind == 10:  # opset
            m.opset_import[0].version = int(rng.choice([1, 7, 11, 13, 21, 99]))
        elif kind == 11 and node is not None:  # empty names
            node.output[0] = ""
    return m.SerializeToString()


def mutant(seeds: dict[str, bytes], name: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    blob = seeds[name]
    if name.startswith("onnx") and rng.random() < 0.7:
        try:
            return mutate_onnx(blob, rng)
        except Exception:  # a structural mutation the protobuf refused: fall back to bytes
            pass
    return mutate_bytes(blob, rng)


# --- running -----------------------------------------------------------------------------------


class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_one(blob: bytes, suffix: str, timeout: float) -> tuple[str, str]:
    """(outcome, detail) of one mutant through import -> passes -> quantize."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"mutant{suffix}"
        path.write_bytes(blob)
        opts = CompileOptions(model=str(path), target="", calib="random")
        try:
            with deadline(timeout):
                run_pipeline(opts, "quantize")
        except Hang:
            return "hang", f">{timeout:g} s"
        except MemoryError:
            return "memory", "MemoryError"
        except TvcError as e:
            return "clean", e.message.splitlines()[0][:200]
        except Exception as e:  # what the fuzzer looks for
            return "internal", f"{type(e).__name__}: {e}"[:300]
    return "compiled", ""


def limit_memory(extra_bytes: int = 2 << 30) -> None:
    """At most 2 GB more address space than now: a runaway allocation is a MemoryError."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    now = pages * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (now + extra_bytes, resource.RLIM_INFINITY))


def campaign(
    count: int,
    seed: int = 0,
    timeout: float = 20.0,
    progress: Callable[[int, Counter[str]], None] | None = None,
) -> list[dict[str, object]]:
    """`count` mutants, spread over the seed models; one record per mutant."""
    seeds = {**onnx_seeds(), **tflite_seeds()}
    names = sorted(seeds)
    out = []
    tally: Counter[str] = Counter()
    for k in range(count):
        name = names[k % len(names)]
        s = seed * 1_000_003 + k
        blob = mutant(seeds, name, s)
        suffix = ".onnx" if name.startswith("onnx") else ".tflite"
        t0 = time.perf_counter()
        outcome, detail = run_one(blob, suffix, timeout)
        tally[outcome] += 1
        out.append(
            {
                "model": name,
                "seed": s,
                "outcome": outcome,
                "detail": detail,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if progress and (k + 1) % 100 == 0:
            progress(k + 1, tally)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a hang")
    ap.add_argument("--json", type=Path, help="write every outcome here")
    ap.add_argument("--replay", help="MODEL:SEED: run one mutant again and show the outcome")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # float overflow in mutants
    limit_memory()
    if args.replay:
        name, s = args.replay.rsplit(":", 1)
        seeds = {**onnx_seeds(), **tflite_seeds()}
        blob = mutant(seeds, name, int(s))
        print(run_one(blob, ".onnx" if name.startswith("onnx") else ".tflite", args.timeout))
        return 0

    def progress(n: int, tally: Counter[str]) -> None:
        print(f"{n:>6} mutants: " + ", ".join(f"{k} {tally[k]}" for k in OUTCOMES), flush=True)

    t0 = time.perf_counter()
    records = campaign(args.count, args.seed, args.timeout, progress)
    tally = Counter(str(r["outcome"]) for r in records)
    print(
        f"{len(records)} mutants in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{k} {tally[k]}" for k in OUTCOMES)
    )
    bad = [r for r in records if r["outcome"] in ("internal", "hang", "memory")]
    for r in bad[:50]:
        print(f"  {r['outcome']}: {r['model']}:{r['seed']}  {r['detail']}")
    kinds = Counter(str(r["detail"]).split(":")[0] for r in bad)
    if kinds:
        print("by exception: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    if args.json:
        args.json.write_text(json.dumps({"tally": dict(tally), "records": records}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
