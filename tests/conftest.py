"""Shared fixtures. Helpers that tests import live in tests/helpers.py."""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import pytest


@pytest.fixture(scope="session")
def vgg():
    import flexsolver

    return flexsolver.load_vgg19()
