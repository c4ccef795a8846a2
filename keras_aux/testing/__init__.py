"""Shared test helpers for keras-aux (one `TestCase` for the whole suite)."""

from keras_aux.testing.test_case import (
    TestCase,
    assert_xla_ran,
    count_xla_executions,
    is_op_determinism_enabled,
    jax_tier_only,
    mirrored_strategy,
    op_determinism,
    requires_tensorflow,
    requires_tensorflow_backend,
)

__all__ = [
    "TestCase",
    "assert_xla_ran",
    "count_xla_executions",
    "is_op_determinism_enabled",
    "jax_tier_only",
    "mirrored_strategy",
    "op_determinism",
    "requires_tensorflow",
    "requires_tensorflow_backend",
]
