"""Shared test helpers for keras-aux (one `TestCase` for the whole suite)."""

from keras_aux.testing.test_case import TestCase, mirrored_strategy

__all__ = ["TestCase", "mirrored_strategy"]
