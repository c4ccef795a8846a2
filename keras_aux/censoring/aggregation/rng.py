"""Counter-based random numbers in ``keras.ops`` (portable, stateless).

``keras.random`` on TensorFlow takes only Python ints or a ``SeedGenerator``
(a variable) as seed, not a seed tensor carried in an explicit state. The
randomised aggregators therefore hash ``(seed, counter, index)`` with the PCG
hash (Jarzynski & Olano 2020, "Hash Functions for GPU Rendering", JCGT 9(3))
in uint32 arithmetic: the same numbers on every backend, under XLA too. Their
state is the counter (an int32 scalar), advanced by one per call.
"""

from keras import ops


def _u32(x):
    return ops.convert_to_tensor(x, dtype="uint32")


def pcg_hash(x):
    """PCG-RXS-M-XS hash of uint32 tensors."""
    state = x * _u32(747796405) + _u32(2891336453)
    word = ops.bitwise_xor(
        ops.right_shift(state, ops.right_shift(state, _u32(28)) + _u32(4)), state
    ) * _u32(277803737)
    return ops.bitwise_xor(ops.right_shift(word, _u32(22)), word)


def uniform(seed, counter, shape, dtype="float32"):
    """Uniform numbers in [0, 1) of ``shape``, a function of ``(seed, counter)``."""
    size = 1
    for s in shape:
        size *= s
    key = pcg_hash(_u32(seed % 2**32) + pcg_hash(ops.cast(counter, "uint32")))
    bits = pcg_hash(ops.cast(ops.arange(size), "uint32") + key)
    values = ops.cast(ops.right_shift(bits, _u32(8)), "float32") * (1.0 / 2**24)
    return ops.cast(ops.reshape(values, shape), dtype)


def normal(seed, counter, shape, dtype="float32"):
    """Standard normal numbers of ``shape`` (Box–Muller on two `uniform` draws)."""
    size = 1
    for s in shape:
        size *= s
    u = uniform(seed, counter, (2, size), "float32")
    u1 = 1.0 - u[0]  # in (0, 1]
    z = ops.sqrt(-2.0 * ops.log(u1)) * ops.cos(6.283185307179586 * u[1])
    return ops.cast(ops.reshape(z, shape), dtype)
