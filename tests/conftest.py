"""Shared fixtures and the hypothesis profiles (``HYPOTHESIS_PROFILE=ci`` in CI)."""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from .race_support import uring_works

settings.register_profile(
    "ci", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

IS_ROOT = os.geteuid() == 0
requires_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")
requires_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
requires_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="needs a C compiler"
)


URING = uring_works()
requires_uring = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")

BACKENDS = ["uring", "sync"]


def check_backend(backend: str) -> str:
    """Skip the test when ``backend`` cannot run here; else return it."""
    if backend == "uring" and not URING:
        pytest.skip("io_uring is unavailable here")
    return backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``backend`` runs once per backend this machine has."""
    return check_backend(str(request.param))


@pytest.fixture
def ring() -> Iterator[object]:
    if not URING:
        pytest.skip("io_uring is unavailable here")
    from pyuring import Ring

    r = Ring(64)
    try:
        yield r
    finally:
        r.close()
