"""Reading the pages' figures back: every figure carries `data-figure="name"` (or `name:key` in a table)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self._open: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = dict(attrs).get("data-figure")
        if name:
            self._open.append((tag, name, []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, name, parts = self._open.pop()
            self.figures[name] = " ".join("".join(parts).split())

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)


def figures(page: str) -> dict[str, str]:
    parser = _Figures()
    parser.feed(page)
    return parser.figures


def number(figs: dict[str, str], name: str) -> int:
    return int(figs[name]) if name in figs else 0


def table(figs: dict[str, str], name: str) -> dict[str, int]:
    return {k.split(":", 1)[1]: int(v) for k, v in figs.items() if k.startswith(f"{name}:")}
