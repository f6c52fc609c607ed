"""Helpers shared by the tests that run the example runner or several processes."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "examples" / "run_ood.py"


def load_run_ood() -> ModuleType:
    """`examples/run_ood.py` as a module (it is a script, not part of the package)."""
    if "run_ood" in sys.modules:
        return sys.modules["run_ood"]
    spec = importlib.util.spec_from_file_location("run_ood", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_ood"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A free TCP port on localhost for a torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
