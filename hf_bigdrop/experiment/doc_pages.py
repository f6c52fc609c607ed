"""A sweep's report in a documentation page: the page keeps its text, and the report goes between the sweep's
markers (`<!-- sweep-table:start NAME -->` ... `<!-- sweep-table:end NAME -->`), so one page holds several sweeps'
tables and `hf-bigdrop sweep --report PAGE` updates them in place."""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_between_markers", "table_markers"]


def table_markers(name: str) -> tuple[str, str]:
    """The comments around a sweep's report in a Markdown page; `name` is the sweep file's stem, so one page can hold
    the reports of several sweeps."""
    return f"<!-- sweep-table:start {name} -->", f"<!-- sweep-table:end {name} -->"


def replace_between_markers(path: Path, text: str, name: str) -> None:
    """Puts `text` between the markers of sweep `name` in `path`, keeping the rest of the file."""
    start, end = table_markers(name)
    document = path.read_text()
    if start not in document or end not in document:
        raise ValueError(f"{path} needs the markers {start} and {end} around the table's place")
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}")
