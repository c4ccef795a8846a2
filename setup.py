"""keras-aux: auxiliary learning for Keras 3, on TensorFlow or JAX.

Requirements are compatible ranges, so that `pip install keras-aux` fits into a project's own
TensorFlow / JAX / Keras stack instead of replacing it. Keras's backend is not a core requirement
(TensorFlow's CPU, CUDA and vendor builds are different distributions; listing one would install
it beside the others): pick one with an extra, `tensorflow-cpu`, `tensorflow`, `gpu`, `jax` or
`jax-cuda12`. The exact stack the tests run on is
`requirements/locked.txt`; the oldest versions the ranges allow, tested in CI, are
`requirements/oldest.txt`. BUILD.md explains both.
"""

from setuptools import find_packages, setup

# Lower bounds: the versions in requirements/oldest.txt (tested by `make test-oldest`).
TENSORFLOW = ">=2.16,<3"  # keep in step with keras_aux.utils.optional.TENSORFLOW_MIN
JAX = ">=0.10"  # the version of requirements/locked-jax.txt (the JAX tier)
LINUX_X86_64 = "sys_platform == 'linux' and platform_machine == 'x86_64'"
NOT_LINUX_X86_64 = "sys_platform != 'linux' or platform_machine != 'x86_64'"  # no `not` in PEP 508

CORE = [
    # Keras >= 3.15: AuxiliaryModel's save/load round trip needs it (BUILD.md, "The ranges").
    "keras>=3.15,<4",
    "numpy>=1.26,<3",
]

EXTRAS = {
    # TensorFlow, the default backend: `import keras_aux` says which of these to install when it
    # is Keras's backend and absent; TensorFlow-only parts say so when used.
    "tensorflow": [f"tensorflow{TENSORFLOW}"],
    # The CPU-only wheel where one exists (Linux x86_64); elsewhere `tensorflow` is CPU-only.
    "tensorflow-cpu": [
        f"tensorflow-cpu{TENSORFLOW}; {LINUX_X86_64}",
        f"tensorflow{TENSORFLOW}; {NOT_LINUX_X86_64}",
    ],
    # The CUDA build with its CUDA and cuDNN wheels (BUILD.md, "Running on a GPU").
    "gpu": [f"tensorflow[and-cuda]{TENSORFLOW}"],
    # Reading audio files (keras_aux.audio.decode, synthetic_music, tfds_builders).
    "audio": ["soundfile>=0.12.1", "soxr>=1.1"],
    # keras_aux.audio.tfds_builders; tfds imports importlib_resources lazily without requiring it.
    "tfds": ["tensorflow-datasets>=4.9.4", "importlib_resources>=6.0"],
    # keras_aux.tuning; scipy and scikit-learn are what BayesianOptimization needs; keras-tuner
    # imports six without requiring it (TensorFlow brings it; on JAX nothing else does).
    "tuning": ["keras-tuner>=1.4.6", "scipy>=1.11.4", "scikit-learn>=1.3", "six>=1.17"],
    # The K-Means baseline (keras_aux.baselines) and the 8x8 digits (keras_aux.datasets.images).
    "sklearn": ["scikit-learn>=1.3"],
    # trainers/ and benchmarks/: flags, plots, confidence intervals, TensorBoard logs.
    "trainers": [
        "absl-py>=1.4",
        "matplotlib>=3.8",
        "scipy>=1.11.4",
        "tensorboard>=2.16.2",
    ],
    # tensorflow-io 0.37.1 only loads its ops on TF <= 2.17: optional, nothing uses it.
    "tfio": ["tensorflow-io>=0.37.1"],
    # The test suite and the linter; librosa is the log-mel reference of the tests; pytest-xdist
    # runs the suite on every core (`make test`).
    "dev": ["pytest>=9.2,<10", "pytest-xdist>=3.6.1,<4", "ruff>=0.17.6,<0.18", "librosa>=0.10.1"],
    # The JAX backend (KERAS_BACKEND=jax), CPU: jax brings its CPU jaxlib. With it and no
    # TensorFlow, keras-aux works but for its TensorFlow-only parts (BUILD.md, "Backends"); the
    # JAX tier (`make test-jax`, requirements/locked-jax.txt) tests exactly that. Separate from
    # `dev`: jax needs numpy 2, TF 2.16 numpy 1.
    "jax": [f"jax{JAX}"],
    # JAX on NVIDIA GPUs (Linux): the CUDA 12 plugin with its CUDA and cuDNN wheels, so the host
    # needs only the NVIDIA driver (BUILD.md, "Running on a GPU").
    "jax-cuda12": [f"jax[cuda12]{JAX}"],
}
# Everything but a TensorFlow flavour and the developer tools.
EXTRAS["all"] = sorted(
    {req for name in ("audio", "tfds", "tuning", "sklearn", "trainers") for req in EXTRAS[name]}
)

setup(
    name="keras-aux",
    version="0.1.0",
    description="Auxiliary learning for Keras 3: reconstruction losses, "
    "gradient censoring and MAXL, fit-native.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_aux", "keras_aux.*"]),
    python_requires=">=3.11",  # Keras 3.15 needs it
    install_requires=CORE,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
