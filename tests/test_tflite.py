"""The int8 oracle: Keras models converted by TFLiteConverter (full int8) and imported by tvc
run bit-exact with tf.lite.Interpreter's reference kernels (what CMSIS-NN and TFLM match)."""

from __future__ import annotations

import numpy as np
import pytest
from tvc_models.keras_zoo import MODELS, build_tflite, reference_interpreter

from compiler.errors import ModelError
from compiler.frontend.tflite import load_tflite
from compiler.ir.interpreter import run_graph
from compiler.passes.manager import STAGES, run_passes

N_INPUTS = 32


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tflite")
    cache: dict[str, object] = {}

    def get(name: str):  # type: ignore[no-untyped-def]
        if name not in cache:
            path = root / f"{name}.tflite"
            path.write_bytes(build_tflite(name))
            cache[name] = path
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(MODELS))
def test_integer_interpreter_is_bit_exact_with_tflite(tflite_file, name: str) -> None:
    path = tflite_file(name)
    interp = reference_interpreter(path.read_bytes())
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    graph = load_tflite(path)
    graphs = {stage: run_passes(graph, stage) for stage in STAGES}
    rng = np.random.default_rng(1234)
    for _ in range(N_INPUTS):
        x = rng.integers(-128, 128, inp["shape"], dtype=np.int64).astype(np.int8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ref = interp.get_tensor(out["index"])
        for stage, g in graphs.items():
            ours = run_graph(g, {g.inputs[0]: x})[g.outputs[0]]
            assert ours.dtype == np.int8
            np.testing.assert_array_equal(ours, ref, err_msg=f"after {stage}")


def test_quantization_parameters_are_imported_as_they_are(tflite_file) -> None:
    g = load_tflite(tflite_file("depthwise"))
    dw = g.nodes[0]
    w = g.tensors[dw.inputs[1]]
    assert dw.op == "conv2d" and dw.attrs["groups"] == 8 and w.shape == (16, 3, 3, 1)
    assert w.qparams is not None and w.qparams.axis == 0 and len(w.qparams.scale) == 16
    assert g.tensors[dw.inputs[2]].dtype == "i32"
    x = g.tensors[g.inputs[0]]
    assert x.dtype == "i8" and x.layout == "NHWC" and x.qparams is not None


def test_bad_tflite_files_are_refused_cleanly(tmp_path, tflite_file) -> None:
    blob = tflite_file("conv").read_bytes()
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(blob[:200])
    with pytest.raises(ModelError, match="not a valid TFLite model|cut.tflite"):
        load_tflite(bad)


def test_unsupported_tflite_operator_names_it(tmp_path) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    # (RESIZE_BILINEAR, this test's operator before, is supported now: test_resize_bilinear.py)
    model = keras.Model(inp, keras.layers.Lambda(lambda t: tf.nn.space_to_depth(t, 2))(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.ones((1, 8, 8, 2), np.float32)] for _ in range(4))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp_path / "up.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(
        ModelError, match=r"up.tflite: operator #\d+ \(SPACE_TO_DEPTH\) is not supported"
    ):
        load_tflite(path)


def test_float32_tflite_is_quantized_by_tvc(tmp_path) -> None:
    """A Keras model converted to float32 TFLite (no quantization): tvc's float graph matches
    tf.lite, and tvc quantizes it with calibration data into C that is bit-exact on the host
    and the Cortex-M4 twin."""
    import keras
    import tensorflow as tf
    from c_oracles import assert_c_bit_exact, compile_for_tests

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(4, activation="softmax")(x))
    blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = tmp_path / "f32.tflite"
    path.write_bytes(blob)
    g = run_passes(load_tflite(path))
    assert g.tensors[g.inputs[0]].dtype == "f32"
    interp = tf.lite.Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp_d, out_d = interp.get_input_details()[0], interp.get_output_details()[0]
    rng = np.random.default_rng(3)
    for _ in range(4):
        xv = rng.uniform(-1, 1, inp_d["shape"]).astype(np.float32)
        interp.set_tensor(inp_d["index"], xv)
        interp.invoke()
        ref = interp.get_tensor(out_d["index"])
        ours = run_graph(g, {g.inputs[0]: xv})[g.outputs[0]]
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.uniform(-1, 1, (16, 12, 12, 3)).astype(np.float32))
    out = compile_for_tests(path, tmp_path / "out", calib=str(calib))
    assert_c_bit_exact(out, n=3)


def _without_names(blob: bytes) -> bytes:
    """The same model with every tensor name left out (as in TFLite Micro's test models)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(blob, 0))
    for sg in m.subgraphs:
        for t in sg.tensors:
            t.name = None
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_tensors_without_names_are_named(tmp_path, tflite_file) -> None:
    from c_oracles import assert_c_bit_exact, assert_tflite_bit_exact, compile_for_tests

    blob = _without_names(tflite_file("add_concat").read_bytes())
    path = tmp_path / "unnamed.tflite"
    path.write_bytes(blob)
    g = load_tflite(path)
    assert g.inputs == ["t0"] and all(n.startswith("t") for n in g.tensors)
    assert_tflite_bit_exact(blob, run_passes(g), n=8)
    assert_c_bit_exact(compile_for_tests(path, tmp_path / "out", calib=None), n=3)


def test_int16x8_tflite_is_refused_with_what_to_do(tmp_path) -> None:
    """TFLite's 16x8 scheme (int16 activations) is refused as what it is (exit 3), not a C
    compile failure."""
    import keras
    import tensorflow as tf
    from helpers import tvc

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(inp)))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)] for _ in range(8)
    )
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]
    path = tmp_path / "a16w8.tflite"
    path.write_bytes(conv.convert())
    r = tvc("compile", path, "--target", "mps2-an386", "--out", tmp_path / "out")
    assert r.returncode == 3, r.stderr
    assert "16x8 scheme" in r.stderr and "TFLITE_BUILTINS_INT8" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_uint8_input_and_output_tflite(tmp_path) -> None:
    """Keras → TFLiteConverter with uint8 input and output (the microTVM Arduino tutorial's
    flow): the QUANTIZE edges are imported, bit-exact with tf.lite's reference kernels, and the
    C API takes and returns uint8_t, bit-exact on the host and the Cortex-M4 twin."""
    import keras
    import tensorflow as tf
    from c_oracles import assert_c_bit_exact, compile_for_tests

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    model = keras.Model(inp, L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(x)))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    calib = [rng.uniform(-1, 1, (1, 10, 10, 3)).astype(np.float32) for _ in range(32)]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    blob = conv.convert()
    path = tmp_path / "u8.tflite"
    path.write_bytes(blob)
    g = run_passes(load_tflite(path))
    assert g.tensors[g.inputs[0]].dtype == "u8" and g.tensors[g.outputs[0]].dtype == "u8"
    interp = reference_interpreter(blob)
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    for _ in range(N_INPUTS):
        xv = rng.integers(0, 256, i["shape"]).astype(np.uint8)
        interp.set_tensor(i["index"], xv)
        interp.invoke()
        ours = run_graph(g, {g.inputs[0]: xv})[g.outputs[0]]
        assert ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, interp.get_tensor(o["index"]))
    out = compile_for_tests(path, tmp_path / "out", calib=None)
    assert_c_bit_exact(out, n=4)
    header = (out / "u8.h").read_text()
    assert "int u8_run(const uint8_t *" in header and "uint8_t *statefulpartitionedcall" in header


def _quantized_dimension_out_of_range(blob: bytes) -> bytes:
    """An older converter's per-channel file: the biases' quantized_dimension points past their
    one axis. tf.lite refuses such files; TFLite Micro runs them."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(blob, 0))
    for sg in m.subgraphs:
        for t in sg.tensors:
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale) > 1 and len(t.shape) == 1:
                q.quantizedDimension = 3
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_old_per_channel_file_that_tf_lite_refuses(tmp_path, tflite_file) -> None:
    """TFLite Micro is the oracle where tf.lite refuses the file: the integer interpreter and
    the C on the host and the twin are bit-exact with it."""
    import tensorflow as tf
    from c_oracles import assert_c_bit_exact, compile_for_tests
    from tflite_micro.python.tflite_micro import runtime

    blob = _quantized_dimension_out_of_range(tflite_file("depthwise").read_bytes())
    with pytest.raises(Exception, match="quantized_dimension"):
        tf.lite.Interpreter(model_content=blob).allocate_tensors()
    path = tmp_path / "old.tflite"
    path.write_bytes(blob)
    g = run_passes(load_tflite(path))
    micro = runtime.Interpreter.from_bytes(blob, arena_size=1 << 20)
    rng = np.random.default_rng(6)
    for _ in range(16):
        x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
        micro.set_input(x, 0)
        micro.invoke()
        ours = run_graph(g, {g.inputs[0]: x})[g.outputs[0]]
        np.testing.assert_array_equal(ours, np.asarray(micro.get_output(0)).reshape(ours.shape))
    assert_c_bit_exact(compile_for_tests(path, tmp_path / "out", calib=None), n=3)
