"""Shared test set-up: the one place that keeps every test module offline (no module sets these itself).

The tiny random backbones that tests build in code are in `tiny_models.py` (configs, BigDrop models, stock
classifiers saved as checkpoints).
"""

import os

# Tests never reach the Hub: everything they load is built here or shipped by pip packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# The cores are shared between the pytest-xdist workers: each worker, and every process a test starts, gets its
# share (one thread each with two workers on two cores). More threads than cores make every OpenMP kernel wait for
# threads that are not running, which slowed training tests several times over.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(_THREADS))
torch.set_num_threads(min(_THREADS, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def backbone(tmp_path_factory):
    """A tiny random ResNet image classifier saved as a checkpoint folder: the backbone of the runner's tests."""
    from tiny_models import save_classifier

    folder = tmp_path_factory.mktemp("backbone")
    save_classifier("resnet", folder)
    return folder
