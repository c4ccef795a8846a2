"""The few things keras-aux needs from Keras and TensorFlow that have no public API.

Everything else in the library uses public Keras API only. Each entry here is
checked by `keras_aux/compat_test.py`, which fails with a clear message when a
supported Keras version moves or changes it.
"""


def input_signature(model):
    """The input spec structure Keras itself infers for ``model.export``.

    Keras infers a built model's serving signature (functional inputs, or the
    shapes a subclassed model was built or called with) in
    ``keras.src.export.export_utils.get_input_signature``; `keras.Model.export`
    uses it, but it is not exported. We need it to serve one output of a
    multi-output model.
    """
    from keras.src.export.export_utils import get_input_signature

    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built: call it on a batch (or `fit` it) before "
            "exporting, or pass `input_signature`."
        )
    return get_input_signature(model)


def raw_global_dtype_policy():
    """The global dtype policy as set, or None while unset.

    The public ``keras.config.dtype_policy()`` fixes an unset policy to the
    current floatx as a side effect, so a check that must not change the state
    it checks (the test suite's leak guard) reads it here.
    """
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("dtype_policy")


def set_raw_global_dtype_policy(policy):
    """Restores what `raw_global_dtype_policy` returned (None: unset again)."""
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("dtype_policy", policy)


def disable_op_determinism():
    """Turns TensorFlow's op determinism off again; TF exports only the switch
    on (`tf.config.experimental.enable_op_determinism`)."""
    from tensorflow.python.framework import config

    config.disable_op_determinism()


def is_op_determinism_enabled():
    """Whether TensorFlow's op determinism is on (not exported by TF either)."""
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


__all__ = [
    "disable_op_determinism",
    "input_signature",
    "is_op_determinism_enabled",
    "raw_global_dtype_policy",
    "set_raw_global_dtype_policy",
]
