"""Helpers shared by the tests that run the example runner or several processes."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "examples" / "run_ood.py"


def load_example(name: str) -> ModuleType:
    """`examples/<name>.py` as a module (the examples are scripts, not part of the package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def load_run_ood() -> ModuleType:
    """`examples/run_ood.py` as a module."""
    return load_example("run_ood")


def free_port() -> int:
    """A free TCP port on localhost for a torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_cpu_processes(script_and_args: list[str], *, cwd: Path, timeout: int = 600) -> None:
    """Runs `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo) and fails with the launcher's output.

    The rendezvous port is picked free just before the launch; if another process takes it in between, the
    launch fails before training starts, so it is tried once more on a new port.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    failures = []
    for _ in range(2):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(free_port()), *script_and_args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
        if result.returncode == 0:
            return
        log = cwd / f"launch-{len(failures)}.log"
        log.write_text(result.stdout + "\n" + result.stderr)
        clues = [
            line
            for line in result.stderr.splitlines()
            if re.search(r"Error|error|terminate|abort|what\(\)", line)
        ]
        failures.append(f"{log}:\n" + "\n".join(clues[:30]))
    raise AssertionError("accelerate launch failed twice:\n" + "\n----\n".join(failures))
