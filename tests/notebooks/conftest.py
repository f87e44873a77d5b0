"""The Jupyter kernel the notebook tests run on: this interpreter, whatever venv it lives in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

KERNEL = "chat-stream"


@pytest.fixture(scope="session")
def notebook_kernel() -> str:
    """A kernelspec that starts this interpreter; installed into the venv once, idempotently."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL
    except NoSuchKernel:
        pass
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", sys.prefix,
         "--name", KERNEL, "--display-name", "chat-stream (.venv)"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return KERNEL
