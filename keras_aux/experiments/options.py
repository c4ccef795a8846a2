"""Config fields that are also command-line flags.

A config dataclass whose fields are shared by several scripts (the genre trainer, its λ sweep and
the search on the genre task all take the same data and model settings) declares each field with
`option`: its default, a one-line help and, for an enumeration, its choices. `flag_specs` turns
the fields into plain `FlagSpec` tuples; each script defines its flags from them with its own flag
library, and `from_values` builds the config back from the parsed values. Nothing here imports or
reads a flag library: the scripts do. `set_tensorflow_threads` is the ``--threads`` option the
benchmarks share.

Reference: the config of the genre experiment (seed 001's reconstruction auxiliary loss;
docs/reconstruction.md), `keras_aux.experiments.genre.GenreConfig`.
"""

import dataclasses
import types
import typing

_KINDS = {bool: "bool", int: "integer", float: "float", str: "string"}


def option(default, help, choices=None):  # noqa: A002 (the flag libraries' word)
    """A dataclass field with a flag description: ``help`` and, for an enumeration, ``choices``.

    Args:
        default: the field's default (immutable: a flag's default).
        help: one line, shown by the script's ``--help``.
        choices: the allowed values of an enumeration (strings), or None.

    Returns:
        A `dataclasses.field` carrying ``help`` and ``choices`` as metadata.

    Reference: seed 001's genre experiment (its shared config); docs/reconstruction.md.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, metadata=metadata)


class FlagSpec(typing.NamedTuple):
    """One flag of a config field.

    Attributes:
        name: the field's (and the flag's) name.
        kind: ``"string"``, ``"integer"``, ``"float"``, ``"bool"`` or ``"enum"`` (absl's
            ``DEFINE_<kind>``).
        default: the field's default.
        help: the field's help line.
        choices: the values of an enumeration (empty otherwise).

    Reference: seed 001's genre experiment; docs/reconstruction.md.
    """

    name: str
    kind: str
    default: typing.Any
    help: str
    choices: tuple = ()

    def define_kwargs(self):
        """Keyword arguments of absl's ``DEFINE_<kind>(name, default, **kwargs)``."""
        kwargs = {"help": self.help}
        if self.kind == "enum":
            kwargs["enum_values"] = list(self.choices)
        return kwargs


def _kind(annotation):
    """The flag kind of a field annotation (``int``, ``float | None``...)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation not in _KINDS:
        raise TypeError(f"No flag kind for a field of type {annotation!r}.")
    return _KINDS[annotation]


def flag_specs(config_cls):
    """The `FlagSpec` of every field of ``config_cls`` declared with `option`, in field order.

    Args:
        config_cls: a dataclass.

    Returns:
        A list of `FlagSpec`.

    Reference: seed 001's genre experiment; docs/reconstruction.md.
    """
    hints = typing.get_type_hints(config_cls)
    specs = []
    for field in dataclasses.fields(config_cls):
        if "help" not in field.metadata:
            continue
        choices = field.metadata.get("choices")
        kind = "enum" if choices else _kind(hints[field.name])
        specs.append(
            FlagSpec(field.name, kind, field.default, field.metadata["help"], choices or ())
        )
    return specs


def from_values(config_cls, values, **overrides):
    """A ``config_cls`` from a mapping of parsed values (e.g. absl's
    ``FLAGS.flag_values_dict()``): the fields found in ``values``, then ``overrides``.

    Reference: seed 001's genre experiment; docs/reconstruction.md.
    """
    names = {field.name for field in dataclasses.fields(config_cls)}
    kwargs = {name: value for name, value in values.items() if name in names}
    return config_cls(**{**kwargs, **overrides})


def set_tensorflow_threads(threads):
    """Limits TensorFlow's intra- and inter-op thread pools to ``threads`` each (0: leaves
    TensorFlow's default), before any op runs: a benchmark split over several processes on a
    small machine runs one thread per process. Does nothing on another backend."""
    import keras

    if threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
