"""Keras models converted to full-int8 TFLite, the flow our users' Keras pipelines produce.

Built at test time with fixed seeds; calibrated with a seeded representative dataset.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _layers():  # type: ignore[no-untyped-def]
    import keras

    return keras, keras.layers


def conv(shape=(32, 32, 3)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(16, 3, strides=2, padding="valid")(x)
    x = L.Conv2D(12, 5, strides=2, padding="same", dilation_rate=1, activation="relu6")(x)
    x = L.Conv2D(6, 1)(x)
    return keras.Model(inp, x)


def depthwise(shape=(24, 24, 8)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu")(x)
    return keras.Model(inp, x)


def dense(shape=(8, 8, 4)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dense(10)(x)
    return keras.Model(inp, x)


def pools(shape=(18, 18, 6)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.Conv2D(8, 3, padding="same")(x)
    a = L.AveragePooling2D(2)(x)
    b = L.MaxPooling2D(3, strides=2, padding="same")(x)
    c = L.AveragePooling2D(3, strides=2, padding="same")(x)
    y = L.Concatenate()([a, b, c])
    y = L.GlobalAveragePooling2D()(y)
    return keras.Model(inp, y)


def add_concat(shape=(16, 16, 4)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(8, 1)(x)
    s = L.Add()([a, b])
    m = L.Multiply()([a, b])
    y = L.Concatenate()([s, m, a])
    y = L.Conv2D(4, 3, padding="same")(y)
    return keras.Model(inp, y)


def softmax_head(shape=(6, 6, 8)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.Conv2D(8, 3)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5)(x)
    x = L.Softmax()(x)
    return keras.Model(inp, x)


def activations(shape=(10, 10, 4)):  # type: ignore[no-untyped-def]
    keras, L = _layers()
    x = inp = keras.Input(shape)
    x = L.Conv2D(8, 3, padding="same")(x)
    a = L.Activation("sigmoid")(x)
    b = L.Activation("tanh")(x)
    c = L.ReLU()(x)
    y = L.Concatenate()([a, b, c])
    y = L.ZeroPadding2D(((1, 2), (0, 1)))(y)
    return keras.Model(inp, y)


def upsample(shape=(16, 16, 3)):  # type: ignore[no-untyped-def]
    """A top-down feature path: the coarse map (8x4) is upsampled and added to the fine one."""
    keras, L = _layers()
    x = inp = keras.Input(shape)
    f = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    c = L.Conv2D(8, 3, strides=(2, 4), padding="same", activation="relu")(f)
    # Resizing lowers to RESIZE_NEAREST_NEIGHBOR (Keras 3's UpSampling2D becomes TILE, which
    # the reference interpreter lacks); unequal factors catch swapped H and W
    u = L.Resizing(16, 16, interpolation="nearest")(c)
    y = L.Conv2D(4, 3, padding="same")(L.Add()([f, u]))
    return keras.Model(inp, y)


def mobilenet_v1_025(shape=(64, 64, 3)):  # type: ignore[no-untyped-def]
    keras, _ = _layers()
    return keras.applications.MobileNet(
        input_shape=shape, alpha=0.25, weights=None, classes=3, classifier_activation="softmax"
    )


MODELS = {
    "conv": conv,
    "depthwise": depthwise,
    "dense": dense,
    "pools": pools,
    "add_concat": add_concat,
    "softmax_head": softmax_head,
    "activations": activations,
    "upsample": upsample,
    "mobilenet_v1_025": mobilenet_v1_025,
}


def build_tflite(name: str, seed: int = 0, calib: int = 64) -> bytes:
    """A full-int8 (int8 in/out) TFLite flatbuffer of the named model."""
    import keras

    keras.utils.set_random_seed(seed)
    model = MODELS[name]()
    # randomize BatchNorm statistics so folding is exercised
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            rng = np.random.default_rng(seed)
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
    return full_int8(model, seed, calib)


def full_int8(model, seed: int = 0, calib: int = 64) -> bytes:  # type: ignore[no-untyped-def]
    """Convert a Keras model to a full-int8 (int8 in/out) TFLite flatbuffer, calibrated on
    seeded uniform noise in [-1, 1]."""
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    samples = [rng.uniform(-1, 1, (1, *shape)).astype(np.float32) for _ in range(calib)]

    def representative():  # type: ignore[no-untyped-def]
        for s in samples:
            yield [s]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def reference_interpreter(blob: bytes):  # type: ignore[no-untyped-def]
    """tf.lite.Interpreter with the reference kernels (what CMSIS-NN and TFLM match)."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(
        model_content=blob,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )
    interp.allocate_tensors()
    return interp
