"""One run on a GPU, on whichever Keras backend is installed (JAX or TensorFlow): how fast
the log-mel front end, the censored step and MAXL's two stages are there, beside the
reference implementations' published or measured numbers (issue 22 §6).

Three measures, each written to the table as soon as it is done (a run cut short keeps
what it measured):

1. **Log-mel spectrograms per second**: `keras_aux.layers.LogMelSpectrogram` (its
   defaults: 16 kHz, FFT 2048, hop 512, 128 Slaney bands, ``(dB + 40) / 40``) on a batch
   of ``--mel_batch`` clips of ``--mel_seconds`` seconds held on the device, compiled
   (``jax.jit`` / ``tf.function(jit_compile=True)``); and, when torch and torchaudio are
   installed, torchaudio's ``MelSpectrogram`` (the same settings: Slaney scale and norm,
   centred frames with zero padding) and ``AmplitudeToDB(top_db=80)`` with the same
   per-clip normalisation, eager, on the same device; the largest absolute difference of
   the two outputs on one batch.
2. **The censored step against the plain Keras step**: step_overhead's gradient-path
   configurations (``plain``, projection on the per-task path and on the forward path,
   no cosine metric, `compile(gradient_path=...)`) and UPGrad (the method of TorchJD's
   reference; ``--censor_configs``) at K = ``--censor_k`` auxiliary tasks,
   on a CNN of about 2.3 M parameters (`cnn_graph`: 32×32×3 images, three stages of two
   3×3 convolutions, a dense layer, a 10-class primary head and K 10-class auxiliary
   heads), batch ``--cnn_batch``, ``jit_compile=True``; on JAX also XLA's temporary
   buffers of each compiled step (step_overhead's `xla_temp_bytes`).
3. **MAXL's two stages against Single**: the 4-layer ConvNet of `keras_aux.maxl.networks`
   on 28×28×1, ψ = 3 × 10, batch ``--maxl_batch``, ``jit_compile=True``: a Single-task
   step and one stage-1 plus one stage-2 update, second order
   (``schedule="interleaved"``, as benchmarks/maxl_cost.py times "both stages").

Steps are timed with ``train_on_batch`` on batches already on the device (its Python
dispatch and the read-back of the logs included, as in every table of benchmarks/),
in interleaved rounds; the median step is reported.

References printed beside ours (as issue 22 gives them): PyTorch MAXL on an H200, Single
3.2 ms and both stages 20 ms per step (6.25×); TorchJD 0.18's UPGrad step 2.55× (K = 1)
and 5.88× (K = 8) the plain step of a 2.3 M-parameter CNN at batch 256.

Run: ``python -m benchmarks.gpu_check`` (or ``KERAS_BACKEND=jax python -m ...``) →
``benchmarks/results/gpu_check_<device>.md`` (``{device}`` in ``--output`` becomes the
device's name, e.g. ``nvidia_h200``); a section that fails is reported in the table and
the others still run; ``--quick`` shrinks every size for a CPU smoke run (do not commit
its table).

References:
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary gradient"
    (projection). Liu, Davison & Johns (2019), "Self-Supervised Generalisation with Meta
    Auxiliary Learning", NeurIPS (MAXL). Quinton & Rey (2024), "Jacobian Descent for
    Multi-Objective Optimization" (TorchJD, UPGrad). McFee et al. (2015), librosa, and
    Yang et al. (2022), "TorchAudio" (the log-mel references).
"""

import datetime
import gc
import os
import platform
import re
import statistics
import time
import traceback

import keras
import numpy as np
from absl import app, flags

# step_overhead defines --rounds, --steps, --warmup and --output; they are this script's too.
from benchmarks import step_overhead
from benchmarks.step_overhead import CONFIGS, FORWARD_TABLE, PLAIN, backend_version, build
from keras_aux.experiments.reporting import write_markdown
from keras_aux.layers import LogMelSpectrogram
from keras_aux.losses import FocalLoss
from keras_aux.maxl import MAXL, conv4_backbone, single_task_network

ON_TENSORFLOW = step_overhead.ON_TENSORFLOW
if ON_TENSORFLOW:
    import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Shrink every size (a CPU smoke run); flags given still apply.")
flags.DEFINE_list("sections", ["mel", "censor", "maxl"], "Measures to run, in this order.")
flags.DEFINE_integer("mel_batch", 32, "Clips per log-mel batch.")
flags.DEFINE_float("mel_seconds", 30.0, "Clip duration in seconds (16 kHz).")
flags.DEFINE_integer("mel_calls", 20, "Timed log-mel batches per round.")
flags.DEFINE_list("censor_k", ["1", "8"], "Numbers of auxiliary tasks of the censored step.")
flags.DEFINE_list(
    "censor_configs",
    [*FORWARD_TABLE, "upgrad"],
    "step_overhead configurations (keys of its CONFIGS) of the censored-step table.",
)
flags.DEFINE_integer("cnn_batch", 256, "Batch size of the CNN.")
flags.DEFINE_float("cnn_width", 1.0, "Multiplier of the CNN's widths (1: about 2.3 M parameters).")
flags.DEFINE_bool("memory", True, "On JAX: XLA's temporary buffers of each compiled step.")
flags.DEFINE_integer("maxl_batch", 100, "Batch size of the MAXL and Single steps.")
flags.DEFINE_integer(
    "budget_s", 540, "Seconds the run should take (progress lines show what is left of them)."
)
for _name in ("rounds", "steps", "warmup", "output"):
    flags.declare_key_flag(_name)  # shown by --help beside this script's own flags
# The device name goes into the default path.
FLAGS.set_default("output", "benchmarks/results/gpu_check_{device}.md")

QUICK = {
    "mel_batch": 2,
    "mel_seconds": 2.0,
    "mel_calls": 2,
    "cnn_batch": 8,
    "cnn_width": 0.125,
    "maxl_batch": 8,
    "rounds": 2,
    "steps": 2,
    "warmup": 1,
}
SAMPLE_RATE = 16000
CNN_SHAPE = (32, 32, 3)
CNN_CLASSES = 10
# Conv widths of the three stages and the dense layer: about 2.3 M parameters in all
# (the size of the CNN of TorchJD's timing), nearly all in the dense layer and the
# last stage.
CNN_STAGES = ((64, 64), (128, 128), (256, 256))
CNN_DENSE = 288
MAXL_PSI = [3] * 10
MAXL_SHAPE = (28, 28, 1)
# Reference numbers printed beside ours.
PYTORCH_MAXL_MS = {"single": 3.2, "maxl": 20.0}
TORCHJD_UPGRAD_RATIO = {1: 2.55, 8: 5.88}


class Clock:
    """Elapsed time of the run and what is left of ``--budget_s``, for progress lines."""

    def __init__(self, budget):
        self.start = time.perf_counter()
        self.budget = budget

    def say(self, message):
        elapsed = time.perf_counter() - self.start
        print(
            f"[{elapsed:6.0f} s elapsed, {self.budget - elapsed:5.0f} s left of "
            f"--budget_s={self.budget}] {message}",
            flush=True,
        )


# ------------------------------------------------------------------ device
def device_name():
    """The accelerator Keras computes on (``"cpu"`` without one)."""
    if ON_TENSORFLOW:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return "cpu"
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
    import jax

    device = jax.devices()[0]
    return "cpu" if device.platform == "cpu" else device.device_kind


def slug(name):
    """``"NVIDIA H200"`` → ``"nvidia_h200"`` (for the file name)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "device"


def on_device(value):
    """``value`` (array or dict of arrays) as backend tensors on the default device, so
    that timed steps read their batch there and copy nothing from the host."""
    if isinstance(value, dict):
        return {key: on_device(v) for key, v in value.items()}
    return keras.ops.convert_to_tensor(value)


def compiled(fn):
    """``fn`` compiled by XLA on the current backend."""
    if ON_TENSORFLOW:
        return tf.function(fn, jit_compile=True)
    import jax

    return jax.jit(fn)


def wait(tensor):
    """Blocks until ``tensor`` is computed (the device runs work in order, so everything
    launched before it is done too); copies one element, not the tensor."""
    return float(keras.ops.convert_to_numpy(tensor[(0,) * len(tensor.shape)]))


def time_interleaved(steps, clock):
    """Median seconds per call of each ``steps[name]()``, timed in ``--rounds`` interleaved
    rounds of ``--steps`` calls (every configuration already warmed up)."""
    times = {name: [] for name in steps}
    gc.collect()
    gc.freeze()  # the traced graphs stay out of collections landing in timed steps
    try:
        for r in range(FLAGS.rounds):
            for name, step in steps.items():
                for _ in range(FLAGS.steps):
                    start = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - start)
            clock.say(f"timing round {r + 1}/{FLAGS.rounds} done")
    finally:
        gc.unfreeze()
    return {name: statistics.median(t) for name, t in times.items()}


# ------------------------------------------------------------------ log-mel
def torch_log_mel():
    """torchaudio's features of `LogMelSpectrogram`'s defaults as a function of a torch
    waveform batch, and the torch device; or None and why."""
    try:
        import torch
        import torchaudio
    except ImportError as error:
        return None, f"torch/torchaudio are not installed ({error})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE,
        n_fft=2048,
        hop_length=512,
        n_mels=128,
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
        center=True,
        pad_mode="constant",
    ).to(device)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0).to(device)

    def features(waves):
        # (batch, 1, mels, frames): AmplitudeToDB floors each clip at its own peak − 80 dB
        # (over a (batch, mels, frames) tensor it would take one peak for the whole batch).
        db = to_db(mel(waves).unsqueeze(1)).squeeze(1)
        db = db - db.amax(dim=(-2, -1), keepdim=True)  # power_to_db(ref=max)
        return ((db + 40.0) / 40.0).transpose(-1, -2)  # (batch, frames, mels), as ours

    return (torch, features, device), None


def per_batch(call, sync):
    """Median seconds per ``call()``: ``--rounds`` rounds of ``--mel_calls`` calls, one
    ``sync`` of the last result per round (the calls queue up on the device as a training
    loop's would)."""
    rounds = []
    for _ in range(FLAGS.rounds):
        start = time.perf_counter()
        for _ in range(FLAGS.mel_calls):
            out = call()
        sync(out)
        rounds.append((time.perf_counter() - start) / FLAGS.mel_calls)
    return statistics.median(rounds)


def time_torch_log_mel(torch, features, device, waves_np, ours):
    """Seconds per batch of torchaudio's features on ``device``, and their largest
    difference from ``ours`` (our output on the same batch)."""
    waves = torch.from_numpy(waves_np).to(device)

    def sync(out):
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    with torch.inference_mode():
        sync(features(waves))  # warm-up: kernels, the filter bank on the device
        seconds = per_batch(lambda: features(waves), sync)
        theirs = features(waves).cpu().numpy()
    if theirs.shape != ours.shape:
        raise RuntimeError(f"Shapes differ: ours {ours.shape}, torchaudio {theirs.shape}.")
    return seconds, float(np.max(np.abs(theirs - ours)))


def mel_section(clock):
    """Log-mel spectrograms per second, ours and torchaudio's; their largest difference."""
    samples = int(FLAGS.mel_seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    # Noise over a few tones: a spread of levels, so the −80 dB floor and the peak both matter.
    t = np.arange(samples) / SAMPLE_RATE
    tones = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 440.0, 1760.0))
    waves_np = (0.1 * tones + 0.01 * rng.standard_normal((FLAGS.mel_batch, samples))).astype(
        "float32"
    )
    layer = LogMelSpectrogram()
    ours = compiled(lambda waves: layer(waves))
    waves = on_device(waves_np)
    start = time.perf_counter()
    wait(ours(waves))
    compile_s = time.perf_counter() - start
    clock.say(f"log-mel compiled ({compile_s:.1f} s); timing")

    ours_s = per_batch(lambda: ours(waves), wait)
    ours_out = keras.ops.convert_to_numpy(ours(waves))
    rows = [("keras_aux LogMelSpectrogram, XLA-compiled", backend_version(), ours_s)]
    notes = []
    max_diff = None
    try:
        reference, why_not = torch_log_mel()
        if reference is None:
            notes.append(f"torchaudio not timed: {why_not}.")
        else:
            torch_s, max_diff = time_torch_log_mel(*reference, waves_np, ours_out)
            torch = reference[0]
            where = f"torch {torch.__version__}, {reference[2]}"
            rows.append(("torchaudio MelSpectrogram + AmplitudeToDB, eager", where, torch_s))
    except Exception as error:  # the rest of the run still counts
        traceback.print_exc()
        notes.append(f"torchaudio failed: `{type(error).__name__}: {error}`.")
    clock.say("log-mel done")
    lines = [
        "## Log-mel spectrograms per second",
        "",
        f"{FLAGS.mel_batch} clips of {FLAGS.mel_seconds:g} s at 16 kHz per batch "
        f"({ours_out.shape[1]} frames × {ours_out.shape[2]} mels each; tones plus noise), held "
        "on the device; FFT 2048, hop 512, 128 Slaney bands, (dB + 40) / 40 with each clip's "
        f"peak as reference and an 80 dB floor. Median over {FLAGS.rounds} rounds of "
        f"{FLAGS.mel_calls} batches (one wait per round). Our compile: {compile_s:.1f} s.",
        "",
        "| implementation | runs on | ms per batch | spectrograms/s |",
        "|---|---|---:|---:|",
    ]
    for label, where, seconds in rows:
        lines.append(
            f"| {label} | {where} | {1000 * seconds:.2f} | {FLAGS.mel_batch / seconds:,.0f} |"
        )
    lines.append("")
    if max_diff is not None:
        lines += [
            f"Largest |ours − torchaudio| on one batch: {max_diff:.2e} (normalised units; "
            "1e-3 = 0.04 dB).",
            "",
        ]
    lines += notes + ([""] if notes else [])
    return lines


# ------------------------------------------------------------------ censored step
def cnn_graph(k=1):
    """The CNN of the censored-step table with ``k`` auxiliary heads (step_overhead's
    graph interface): 32×32×3 → three stages of two Conv2D 3×3 (same, ReLU) and a 2×2
    max-pool → Flatten → Dense(288, ReLU) → a 10-class softmax primary head and ``k``
    10-class softmax auxiliary heads, sparse cross-entropy, batch ``--cnn_batch``."""
    width = FLAGS.cnn_width
    x = keras.Input(CNN_SHAPE, name="image")
    h = x
    for stage, filters in enumerate(CNN_STAGES):
        for i, units in enumerate(filters):
            units = max(1, round(units * width))
            h = keras.layers.Conv2D(units, 3, padding="same", activation="relu",
                                    name=f"conv{stage}_{i}")(h)  # fmt: skip
        h = keras.layers.MaxPooling2D(name=f"pool{stage}")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(max(1, round(CNN_DENSE * width)), activation="relu", name="dense")(h)
    names = ["auxiliary"] if k == 1 else [f"auxiliary_{i}" for i in range(k)]
    outputs = {
        t: keras.layers.Dense(CNN_CLASSES, activation="softmax", name=t)(h)
        for t in ["primary", *names]
    }
    losses = {t: "sparse_categorical_crossentropy" for t in outputs}
    rng = np.random.default_rng(0)
    data_x = rng.uniform(size=(FLAGS.cnn_batch, *CNN_SHAPE)).astype("float32")
    y = {t: rng.integers(0, CNN_CLASSES, size=FLAGS.cnn_batch).astype("int32") for t in outputs}
    return x, outputs, losses, data_x, y, {}


def censor_section(clock):
    """The censored step (both gradient paths) against plain Keras at each K."""
    keys = step_overhead.check_keys(FLAGS.censor_configs)
    if PLAIN.key not in keys:
        raise app.UsageError(f"--censor_configs needs {PLAIN.key!r}, the reference of the ratios.")
    jobs = [(int(k), key) for k in FLAGS.censor_k for key in keys]
    steps, compile_s, params, memory = {}, {}, {}, {}
    for i, (k, key) in enumerate(jobs):
        clock.say(f"building and compiling {i + 1}/{len(jobs)}: K = {k}, {CONFIGS[key].label}")
        model, x, y = build(cnn_graph, k, CONFIGS[key], True)
        x, y = on_device(x), on_device(y)
        start = time.perf_counter()
        model.train_on_batch(x, y)  # traces and compiles
        compile_s[(k, key)] = time.perf_counter() - start
        for _ in range(FLAGS.warmup - 1):
            model.train_on_batch(x, y)
        if FLAGS.memory and not ON_TENSORFLOW:
            memory[(k, key)] = step_overhead.xla_temp_bytes(model, x, y)
        params[k] = model.count_params()
        steps[(k, key)] = lambda m=model, x=x, y=y: m.train_on_batch(x, y)
    median = time_interleaved(steps, clock)
    del steps
    gc.collect()
    trunk = params[min(params)] - (1 + min(params)) * (
        (max(1, round(CNN_DENSE * FLAGS.cnn_width)) + 1) * CNN_CLASSES
    )
    sizes = ", ".join(f"{params[k] / 1e6:.2f} M at K = {k}" for k in sorted(params))
    lines = [
        "## Censored step against the plain Keras step (CNN)",
        "",
        f"`cnn_graph`: 32×32×3 images, Conv2D 3×3 stages {CNN_STAGES} (scaled by "
        f"{FLAGS.cnn_width:g}) each with a 2×2 max-pool, Dense({round(CNN_DENSE * FLAGS.cnn_width)}), "
        f"10-class primary head and K 10-class auxiliary heads: {trunk / 1e6:.2f} M parameters "
        f"without the heads ({sizes}). Batch {FLAGS.cnn_batch}, Adam, λ = "
        f"{step_overhead.LAMBDA:g}, `jit_compile=True`. Projection with global granularity, no "
        'cosine metric, on the per-task path (`gradient_path="per_task"`: 1 + K backward '
        'passes) and on the forward path (`"forward"`: the primary gradient, the weighted '
        'total\'s and one directional derivative); UPGrad (`censoring="upgrad"`, its `compile` '
        "defaults: 1 + K backward passes and the quadratic programme), the method of the "
        "TorchJD reference. Median of "
        f"{FLAGS.rounds * FLAGS.steps} `train_on_batch` steps per configuration, interleaved "
        "rounds. **compile** = the first step. "
        + (
            "**memory** = XLA's temporary buffers of the compiled step (state donated). "
            if memory
            else ""
        )
        + "Reference: TorchJD 0.18's UPGrad step (Jacobian descent: one gradient per task and "
        "a quadratic programme), on a 2.3 M-parameter CNN at batch 256, is "
        f"{TORCHJD_UPGRAD_RATIO[1]}× (K = 1) and {TORCHJD_UPGRAD_RATIO[8]}× (K = 8) the plain step.",
        "",
        "| K | configuration | backward passes | median step (ms) | ratio to plain "
        "| TorchJD UPGrad ratio | compile (s) |" + (" memory (MiB) |" if memory else ""),
        "|---:|---|---:|---:|---:|---:|---:|" + ("---:|" if memory else ""),
    ]
    for k, key in jobs:
        m = median[(k, key)]
        reference = "—"
        if key == "upgrad" and k in TORCHJD_UPGRAD_RATIO:
            reference = f"{TORCHJD_UPGRAD_RATIO[k]:.2f}×"
        mem = memory.get((k, key))
        lines.append(
            f"| {k} | {CONFIGS[key].label} | {CONFIGS[key].backward_passes(k)} "
            f"| {1000 * m:.2f} | {m / median[(k, PLAIN.key)]:.2f}× | {reference} "
            f"| {compile_s[(k, key)]:.1f} |" + ("" if mem is None else f" {mem / 2**20:.1f} |")
        )
    lines.append("")
    return lines


# ------------------------------------------------------------------ MAXL
def maxl_section(clock):
    """MAXL's two stages (second order) against the Single step."""
    rng = np.random.default_rng(0)
    x = on_device(rng.random((FLAGS.maxl_batch, *MAXL_SHAPE)).astype("float32"))
    y = on_device(rng.integers(0, len(MAXL_PSI), size=FLAGS.maxl_batch).astype("int32"))
    keras.utils.set_random_seed(0)
    single = single_task_network(conv4_backbone(MAXL_SHAPE, seed=0), len(MAXL_PSI), seed=0)
    single.compile(keras.optimizers.SGD(0.01), loss={"primary": FocalLoss()}, jit_compile=True)
    keras.utils.set_random_seed(0)
    maxl = MAXL.from_backbone(
        conv4_backbone, MAXL_SHAPE, MAXL_PSI, seed=0, order=2, schedule="interleaved",
        track_gradient_cosine=False,
    )  # fmt: skip
    maxl.compile(jit_compile=True)
    steps = {
        "single": lambda: single.train_on_batch(x, {"primary": y}),
        "maxl": lambda: maxl.train_on_batch(x, y),
    }
    compile_s = {}
    for name, step in steps.items():
        clock.say(f"compiling {name}")
        start = time.perf_counter()
        step()
        compile_s[name] = time.perf_counter() - start
        for _ in range(FLAGS.warmup - 1):
            step()
    median = time_interleaved(steps, clock)
    labels = {
        "single": "Single (primary head only)",
        "maxl": "MAXL order 2, both stages (one θ1 and one θ2 update)",
    }
    reference_ratio = PYTORCH_MAXL_MS["maxl"] / PYTORCH_MAXL_MS["single"]
    lines = [
        "## MAXL's two stages against Single (4-layer ConvNet)",
        "",
        f"`conv4_backbone` (32-64-128-256) on 28×28×1, ψ = 3 × 10, batch {FLAGS.maxl_batch}, "
        "SGD, focal loss, `jit_compile=True`, gradient cosine off; MAXL with "
        '`schedule="interleaved"` (a stage-1 and a stage-2 update each step). Median of '
        f"{FLAGS.rounds * FLAGS.steps} steps, interleaved rounds. Reference: "
        f"PyTorch MAXL on an H200, Single {PYTORCH_MAXL_MS['single']} ms and both stages "
        f"{PYTORCH_MAXL_MS['maxl']:g} ms per step ({reference_ratio:.2f}×).",
        "",
        "| configuration | median step (ms) | ratio to Single | PyTorch MAXL (ms) "
        "| PyTorch ratio | compile (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in steps:
        m = median[name]
        ref = PYTORCH_MAXL_MS[name]
        lines.append(
            f"| {labels[name]} | {1000 * m:.2f} | {m / median['single']:.2f}× | {ref:g} "
            f"| {ref / PYTORCH_MAXL_MS['single']:.2f}× | {compile_s[name]:.1f} |"
        )
    lines.append("")
    return lines


SECTIONS = {"mel": mel_section, "censor": censor_section, "maxl": maxl_section}


def command_line():
    """The command that reproduces this run (every flag given)."""
    prefix = "" if ON_TENSORFLOW else f"KERAS_BACKEND={keras.backend.backend()} "
    parts = [f"{prefix}python -m benchmarks.gpu_check"]
    for name in [
        "quick",
        "sections",
        "rounds",
        "steps",
        "warmup",
        *QUICK,
        "censor_k",
        "censor_configs",
        "memory",
    ]:
        if FLAGS[name].present and f"--{name}" not in " ".join(parts):
            value = FLAGS[name].value
            value = ",".join(value) if isinstance(value, list) else value
            parts.append(f"--{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " ".join(parts)


def main(argv):
    del argv
    clock = Clock(FLAGS.budget_s)
    unknown = [s for s in FLAGS.sections if s not in SECTIONS]
    if unknown:
        raise app.UsageError(f"Unknown sections {unknown}; the sections are {list(SECTIONS)}.")
    if FLAGS.quick:
        for name, value in QUICK.items():
            if not FLAGS[name].present:
                FLAGS[name].value = value
    if ON_TENSORFLOW:
        tf.get_logger().setLevel("ERROR")
        # Take GPU memory as needed, leaving the rest to torch (the log-mel reference).
        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # the GPU was initialised already: TF keeps it all
            print(f"GPU memory growth not set ({error}); torch may run short of memory.")
    device = device_name()
    output = FLAGS.output.format(device=slug(device))
    clock.say(f"device: {device}; backend {backend_version()}; writing {output}")
    lines = [
        f"# GPU check: {device}",
        "",
        f"`{command_line()}` on {platform.node() or 'this machine'} ({device}; "
        f"{os.cpu_count()} CPUs, {backend_version()}, Keras {keras.__version__}), "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. One run; "
        "ratios within it.",
        "",
    ]
    if device == "cpu":
        lines += ["**No accelerator: a CPU run, not a GPU table.**", ""]
    failed = []
    for section in FLAGS.sections:
        clock.say(f"section {section}")
        try:
            lines += SECTIONS[section](clock)
        except Exception as error:  # the other sections still run (one device run, one try)
            traceback.print_exc()
            failed.append(section)
            lines += [f"**Section {section} failed:** `{type(error).__name__}: {error}`", ""]
        # Written after each section: a run stopped later keeps what it measured.
        write_markdown(lines[:-1], output)
    clock.say("done")
    if failed:
        raise SystemExit(
            f"Sections {failed} failed (tracebacks above); the others are in {output}."
        )


if __name__ == "__main__":
    app.run(main)
