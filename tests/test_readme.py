"""The README's quickstart runs as written, offline."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> str:
    section = README.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"no python block under '## {title}'"
    return blocks[0]


def test_quickstart_runs_as_written(tmp_path, monkeypatch, capsys):
    import torch

    code = _section_code("Quickstart")
    assert len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(code, str(README), "exec"), namespace)
    assert (tmp_path / "runs" / "quickstart" / "model" / "model.safetensors").exists()
    # It visibly learns: the training accuracy it prints is far above chance (1/3).
    accuracy = float(re.search(r"training accuracy: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert accuracy > 0.5
