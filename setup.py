"""keras-aux: auxiliary learning for Keras 3 / TensorFlow.

The whole tested stack is pinned here, in one place (see BUILD.md for why).
"""

from setuptools import find_packages, setup

TENSORFLOW_VERSION = "2.21.0"

CORE = [
    f"tensorflow-cpu=={TENSORFLOW_VERSION}; platform_machine=='x86_64'",
    f"tensorflow=={TENSORFLOW_VERSION}; platform_machine!='x86_64'",
    "keras==3.15.1",
    "tensorboard==2.21.0",
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",
    "keras-tuner==1.4.8",
    "absl-py==2.5.1",
    "soundfile==0.14.0",
    "numpy>=1.26,<3",
    "matplotlib==3.11.2",
    # K-Means of MAXL's K-Means baseline (keras_aux.baselines) and the digits data set
    # (keras_aux.data.images.load_digits); imported lazily there, pinned to the tested version.
    "scikit-learn==1.9.1",
]

EXTRAS = {
    # The CUDA build of TensorFlow; install with `pip install -e .[gpu]`
    # after uninstalling tensorflow-cpu (BUILD.md, "Running on a GPU").
    "gpu": [f"tensorflow[and-cuda]=={TENSORFLOW_VERSION}"],
    # tensorflow-io 0.37.1 only loads its ops on TF <= 2.17: optional, never required.
    "tfio": ["tensorflow-io==0.37.1"],
    "bayesian": ["scipy==1.17.1"],  # scikit-learn is a core requirement
    "dev": [
        "pytest==9.2.0",
        "ruff==0.17.6",
        "librosa==0.11.0",
    ],
}

setup(
    name="keras-aux",
    version="0.1.0",
    description="Auxiliary learning for Keras 3: reconstruction losses, "
    "gradient censoring and MAXL, fit-native.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_aux", "keras_aux.*"]),
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
