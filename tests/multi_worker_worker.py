"""One worker of `tests/test_multi_worker.py` (a program, not a test module).

Run as ``python tests/multi_worker_worker.py DATA.npz OUT_DIR`` with ``TF_CONFIG``
naming this worker in a two-worker cluster. It joins a
`tf.distribute.MultiWorkerMirroredStrategy` (RING collectives over gRPC), and
for every case of `CASES` builds the small `AuxiliaryModel` of `build_model`
in the strategy's scope, sets the initial weights from ``DATA.npz``, trains
it on the global batches of ``DATA.npz`` (this worker's half of each, see
`shard`) and records the trainable weights after every step; last, it tries
`fit` (`probe_fit`). It writes ``OUT_DIR/worker<index>.npz`` and exits; a
watchdog (``WORKER_TIMEOUT`` seconds) ends it if it hangs.

The test imports this file (`make_data`, `build_model`, `fit_case`, `CASES`...),
so the single-device reference runs the same code without a strategy.
"""

import faulthandler
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_aux.models import AuxiliaryModel  # noqa: E402

N_FEATURES = 6
N_CLASSES = 3
GLOBAL_BATCH = 32
STEPS = 2

# name -> (seed, regularize, compile arguments). The non-linear modes are the
# point (censoring needs the global gradients); "multitask" goes through the
# same all-reduce (the cosine metric needs per-task gradients), and
# "multitask_one_pass" through the plain Keras step (one backward pass, summed
# by the optimizer).
CASES = {
    "projection": (1, True, dict(censoring="projection", ema_alpha=0.5)),
    "unweighted_cosine_per_variable": (
        6,
        False,
        dict(censoring="unweighted_cosine", granularity="per_variable"),
    ),
    "multitask": (7, True, dict(censoring="multitask", track_gradient_cosine=True)),
    "multitask_one_pass": (
        8,
        False,
        dict(censoring="multitask", track_gradient_cosine=False),
    ),
}


def build_model(seed, regularize):
    """Shared tanh trunk → softmax ``label`` (primary) + linear reconstruction
    ``aux`` of the input (as in `keras_aux/models/auxiliary_test.py`)."""
    init = keras.initializers.GlorotUniform(seed=seed)
    reg = keras.regularizers.L2(0.01) if regularize else None
    x = keras.Input((N_FEATURES,), name="features")
    h = keras.layers.Dense(
        8, activation="tanh", kernel_initializer=init, kernel_regularizer=reg, name="trunk"
    )(x)
    outputs = {
        "label": keras.layers.Dense(
            N_CLASSES, activation="softmax", kernel_initializer=init, name="label_head"
        )(h),
        "aux": keras.layers.Dense(N_FEATURES, kernel_initializer=init, name="aux_head")(h),
    }
    return AuxiliaryModel(x, outputs, primary="label", input_targets={"aux": "features"})


def compile_model(model, **kwargs):
    """SGD(0.1), cross-entropy + λ=2 MAE reconstruction, the given censoring."""
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"label": "sparse_categorical_crossentropy", "aux": "mae"},
        loss_weights={"aux": 2.0},
        **kwargs,
    )
    return model


def make_data(n=GLOBAL_BATCH * STEPS, seed=0):
    """``(x, y)``: ``n`` rows, 3 classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y


def shard(dataset, context):
    """This input pipeline's share of ``dataset`` (rows in order): batches of
    the per-replica size, every ``num_input_pipelines``-th one from
    ``input_pipeline_id``. With one replica per worker, global step ``s``
    is worker 0's rows ``[B s, B s + B/2)`` and worker 1's
    ``[B s + B/2, B (s + 1))`` for the global batch ``B``: together, the rows
    a single device takes at step ``s`` with ``batch_size=B``."""
    per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
    return dataset.batch(per_replica).shard(context.num_input_pipelines, context.input_pipeline_id)


def trainable_weights(model):
    """The values of ``model.trainable_variables`` (numpy arrays)."""
    return [np.array(v) for v in model.trainable_variables]


class WeightsPerStep(keras.callbacks.Callback):
    """Records the model's trainable weights after every training batch."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(trainable_weights(self.model))


def distributed_dataset(strategy, x, y, rows=None):
    """``(x, y)`` for ``strategy``, each worker reading its `shard`; the rows
    this worker reads are stored in ``rows`` (a list) when given."""

    def dataset_fn(context):
        if rows is not None:
            # The same pipeline over the row numbers.
            indices = shard(tf.data.Dataset.range(len(x)), context)
            rows[:] = [int(i) for batch in indices.as_numpy_iterator() for i in batch]
        return shard(tf.data.Dataset.from_tensor_slices((x, y)), context)

    return strategy.distribute_datasets_from_function(dataset_fn)


def fit_case(name, initial, x, y, strategy=None):
    """Trains case ``name`` from weights ``initial`` for ``len(x) //
    GLOBAL_BATCH`` steps; returns the weights after every step, the logs of
    the last step (running means over the steps) and, under a strategy, the
    rows this worker read.

    Without a strategy this is `fit`. Under one it is a loop of
    ``strategy.run(model.train_step)``, the replica step of `fit`, logs
    averaged over replicas as `fit` does: `fit` itself fails under
    `MultiWorkerMirroredStrategy` in Keras 3 (see `probe_fit`).
    """
    seed, regularize, kwargs = CASES[name]
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = compile_model(build_model(seed, regularize), **kwargs)
    for variable, value in zip(model.trainable_variables, initial, strict=True):
        variable.assign(value)
    steps = len(x) // GLOBAL_BATCH
    if strategy.num_replicas_in_sync == 1:
        recorder = WeightsPerStep()
        history = model.fit(
            x,
            y,
            batch_size=GLOBAL_BATCH,
            epochs=1,
            shuffle=False,
            callbacks=[recorder],
            verbose=0,
        ).history
        return recorder.steps, {k: v[-1] for k, v in history.items()}, []

    @tf.function(autograph=False)  # as Keras traces its steps
    def train_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    rows = []
    iterator = iter(distributed_dataset(strategy, x, y, rows))
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    weights = []
    for _ in range(steps):
        logs = train_step(iterator)
        weights.append(trainable_weights(model))
    return weights, {k: float(v) for k, v in logs.items()}, rows


def probe_fit(strategy, x, y):
    """Runs `fit` for one step under ``strategy``; returns None, or the error
    it raised (``"Type: first line"``).

    Keras 3.15 fails twice there under `MultiWorkerMirroredStrategy`
    (keras-team/keras#20585): `fit` first builds the model from one batch
    reduced with ``strategy.reduce`` (a nested batch: "Attempt to convert a
    value (PerReplica...)"), and its train function averages the logs with
    ``strategy.reduce("MEAN", v, axis=0)`` (scalar logs: "Invalid reduction
    dimension 0"). Neither is `AuxiliaryModel` code.
    """
    seed, regularize, kwargs = CASES["projection"]
    with strategy.scope():
        model = compile_model(build_model(seed, regularize), **kwargs)
    try:
        model.fit(distributed_dataset(strategy, x, y), epochs=1, steps_per_epoch=1, verbose=0)
    except Exception as error:  # reported to the test
        lines = str(error).splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}"
    return None


def main(data_path, out_dir):
    """Joins the cluster of ``TF_CONFIG``, fits every case, writes the results."""
    start = time.monotonic()
    # Ends this process (with a traceback on stderr) should the cluster hang.
    faulthandler.dump_traceback_later(float(os.environ.get("WORKER_TIMEOUT", "120")), exit=True)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=60.0,
        )
    )
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    print(f"worker {index}: strategy after {time.monotonic() - start:.1f}s", flush=True)
    data = np.load(data_path)
    x, y = data["x"], data["y"]
    arrays, info = {}, {"replicas": strategy.num_replicas_in_sync, "cases": {}}
    for name in CASES:
        initial = [data[f"{name}/initial/{i}"] for i in range(int(data[f"{name}/count"]))]
        steps, logs, rows = fit_case(name, initial, x, y, strategy)
        for step, weights in enumerate(steps):
            for i, w in enumerate(weights):
                arrays[f"{name}/step{step}/{i}"] = w
        info["cases"][name] = {"steps": len(steps), "rows": rows, "logs": logs}
        print(f"worker {index}: {name} after {time.monotonic() - start:.1f}s", flush=True)
    # Last: should `fit` fail on one worker only, the cases above are done.
    info["fit_error"] = probe_fit(strategy, x[:GLOBAL_BATCH], y[:GLOBAL_BATCH])
    arrays["info"] = np.array(json.dumps(info))
    path = os.path.join(out_dir, f"worker{index}.npz")
    np.savez(path + ".part.npz", **arrays)
    os.replace(path + ".part.npz", path)
    print(f"worker {index}: done after {time.monotonic() - start:.1f}s", flush=True)
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main(*sys.argv[1:3])
