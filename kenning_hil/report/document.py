"""A report as a list of blocks (headings, paragraphs, tables, figures), and its rendering to
Markdown, reStructuredText and a standalone HTML page: the report's content is built once
and every format shows the same thing.

Text in blocks is plain text; each renderer escapes it for its format. Links and figure
paths are relative to the report's directory.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

FORMATS = ("md", "rst", "html")


@dataclass
class Heading:
    level: int  # 1: the title, 2: a section, 3: a run
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    links: list[str | None] = field(default_factory=list)  # per row: its first cell's target


@dataclass
class Figure:
    path: str  # relative to the report
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


# ------------------------------------------------------------------------------ Markdown

# emphasis, code, HTML and table markup; '_' inside a word and balanced brackets (test ids
# are full of both) are text in CommonMark already, and stay readable unescaped
_MD_SPECIAL = re.compile(r"([\\`*<|])")


def md_escape(text: str) -> str:
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return "\\" + escaped if escaped.startswith(("#", "-", "+")) else escaped


def _md_cell(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + md_escape(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [md_escape(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {md_escape(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += ["| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                      "|" + "---|" * len(block.header)]
            for i, row in enumerate(block.rows):
                cells = [_md_cell(c) for c in row]
                link = block.links[i] if i < len(block.links) else None
                if link:
                    cells[0] = f"[{cells[0]}]({quote(link)})"
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(block, Figure):
            lines += [f"![{md_escape(block.caption)}]({quote(block.path)})", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------- reStructuredText

# characters with a meaning in RST inline text; a backslash makes each literal
_RST_INLINE = re.compile(r"([\\`*_|<>\[\]])")


def rst_escape(text: str) -> str:
    escaped = _RST_INLINE.sub(r"\\\1", text.replace("\n", " "))
    # a cell starting with '-', '+', '#' or '1.' would open a list: keep it text
    if re.match(r"[-+#]|\d+[.)]\s", escaped):
        escaped = "\\" + escaped
    return escaped


_RST_MARKS = {1: "=", 2: "-", 3: "~", 4: "^"}


def _rst_heading(text: str, level: int) -> list[str]:
    mark = _RST_MARKS.get(level, "^")
    text = rst_escape(text)
    rule = mark * max(len(text), 4)
    return [rule, text, rule] if level == 1 else [text, rule]


def to_rst(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += [*_rst_heading(block.text, block.level), ""]
        elif isinstance(block, Paragraph):
            lines += [rst_escape(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {rst_escape(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += [".. list-table::", "   :header-rows: 1", ""]
            table = [[rst_escape(h) for h in block.header]]
            for i, row in enumerate(block.rows):
                cells = [rst_escape(c) for c in row]
                link = block.links[i] if i < len(block.links) else None
                if link:
                    cells[0] = f"`{cells[0] or 'results'} <{quote(link)}>`__"
                table.append(cells)
            for cells in table:
                cells = [c if c else "\\ " for c in cells]  # an empty cell stays a cell
                lines.append(f"   * - {cells[0]}")
                lines += [f"     - {cell}" for cell in cells[1:]]
            lines.append("")
        elif isinstance(block, Figure):
            lines += [f".. figure:: {quote(block.path)}", f"   :alt: {rst_escape(block.caption)}",
                      "", f"   {rst_escape(block.caption)}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- HTML

_CSS = """body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.2em .5em;
text-align:left;font-size:90%}th{background:#f0f0f0}figure{margin:.5em 0 1.5em}
img{max-width:100%}figcaption{font-size:85%;color:#555}h3{border-top:1px solid #ddd;
padding-top:.6em}"""


def to_html(blocks: Sequence[Block]) -> str:
    """A standalone page (inline style, no script, images by relative path)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "report")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>",
             '<link rel="icon" href="data:,">',  # no favicon request: nothing fails to load
             f"<style>{_CSS}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(block.level, 6)
            parts.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items)
                         + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = []
            for i, row in enumerate(block.rows):
                cells = [html.escape(c) for c in row]
                link = block.links[i] if i < len(block.links) else None
                if link:
                    cells[0] = f'<a href="{html.escape(quote(link))}">{cells[0]}</a>'
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                         "</tbody></table>")
        elif isinstance(block, Figure):
            parts.append(f'<figure><img src="{html.escape(quote(block.path))}" '
                         f'alt="{html.escape(block.caption)}"><figcaption>'
                         f"{html.escape(block.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


RENDERERS = {"md": to_markdown, "rst": to_rst, "html": to_html}


def parse_formats(text: str) -> list[str]:
    """'md,rst,html' -> ['md', 'rst', 'html']; ValueError naming an unknown one."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown or not formats:
        raise ValueError(f"unknown report format {', '.join(unknown) or repr(text)} "
                         f"(formats: {', '.join(FORMATS)})")
    return list(dict.fromkeys(formats))
