"""Writing a report's files: ``report.json`` and the self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

from stream.report.build import Report
from stream.report.html import render_html


def write_report(report: Report, out_dir: Path, *, html_page: bool = True) -> list[Path]:
    """Write ``report.json`` (and ``report.html`` unless ``html_page`` is False) into
    ``out_dir``, created if needed; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json"]
    paths[0].write_bytes(report.to_json() + b"\n")
    if html_page:
        paths.append(out_dir / "report.html")
        paths[1].write_text(render_html(report), encoding="utf-8")
    return paths
