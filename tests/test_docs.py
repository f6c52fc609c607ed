"""Every Python block of the documentation site runs as written, offline, or its page says why it cannot.

A block that cannot run here (it downloads from the Hub, needs a finished run, or is a signature) is preceded by
`<!-- docs-test: skip (the reason) -->`; every other ```python block of a page runs, in order, in one namespace,
in an empty working directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(
    r"(?P<marker><!-- docs-test: skip \((?P<reason>[^)]*)\) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL
)
MARKER = re.compile(r"<!-- docs-test:[^>]*-->")


def _python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    text = page.read_text()
    return [
        (text.count("\n", 0, match.start("code")) + 1, match["code"], match["reason"])
        for match in BLOCK.finditer(text)
    ]


PAGES = [page for page in sorted(DOCS.rglob("*.md")) if _python_blocks(page)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for line, code, skip_reason in _python_blocks(page):
        if skip_reason is None:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)


def test_every_skip_marker_has_a_reason_and_a_python_block():
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        marked = [m for m in BLOCK.finditer(text) if m["marker"]]
        assert len(MARKER.findall(text)) == len(marked), (
            f"{page}: a docs-test marker not right above a ```python block"
        )
        for match in marked:
            assert match["reason"].strip(), f"{page}: a skipped block must say why"
