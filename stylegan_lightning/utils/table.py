"""Plain-text tables for benchmarks and tool reports."""

from __future__ import annotations

import textwrap
from typing import Any, Sequence


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], max_width: int | None = None) -> str:
    """A Markdown-style table (readable in a terminal and pasteable into docs). With ``max_width``, the widest
    columns are narrowed (to 12 characters at least) and their cells wrapped onto continuation lines until every
    line fits."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if max_width is not None:
        while sum(widths) + 3 * len(widths) + 1 > max_width and max(widths) > 12:
            widest = widths.index(max(widths))
            widths[widest] = max(12, widths[widest] - (sum(widths) + 3 * len(widths) + 1 - max_width))
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731

    def lines(values: Sequence[str]) -> list[str]:
        wrapped = [textwrap.wrap(v, w, break_on_hyphens=False) or [""] if len(v) > w else [v]
                   for v, w in zip(values, widths)]
        return [line([part[i] if i < len(part) else "" for part in wrapped])
                for i in range(max(len(part) for part in wrapped))]

    body = [text for row in cells for text in lines(row)]
    return "\n".join([*lines(list(headers)), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *body])
