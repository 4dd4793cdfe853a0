"""HTML building blocks of the study report: escaping, tables, the page skeleton and its style.

Every string that comes from a study (names, model paths, warnings, configuration values) goes
through `esc` before it reaches the page, so a hostile study cannot inject markup or script. The
page carries a Content-Security-Policy that forbids scripts and every network fetch: the report
has no JavaScript and needs no network, and the policy makes that a property a browser enforces.
"""
from __future__ import annotations

import html
from typing import Any, Iterable

# No script, no remote fetch of any kind; inline styles and inline SVG (and data: images) only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root { --ink:#1d2733; --muted:#5b6775; --line:#d5dbe3; --band:#f4f6f9; --accent:#1f5f99;
        --warn-bg:#fff5e0; --warn-line:#e0a53a; --bad-bg:#fdecec; --bad-line:#d0605e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header.top { border-bottom: 3px solid var(--accent); padding-bottom: 10px; margin-bottom: 8px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line);
     color: var(--accent); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p, li { max-width: 80em; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
nav.toc { font-size: 13px; margin: 8px 0 0; }
nav.toc a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 4px; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 150px;
       background: var(--band); }
.kpi b { display: block; font-size: 18px; }
.kpi span { font-size: 12px; color: var(--muted); }
.banner { border-left: 5px solid var(--warn-line); background: var(--warn-bg); padding: 8px 12px;
          margin: 10px 0; border-radius: 3px; }
.banner.bad { border-left-color: var(--bad-line); background: var(--bad-bg); }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; vertical-align: top; text-align: left; }
th { background: var(--band); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
.scroll { overflow-x: auto; }
.ci { display: block; color: var(--muted); font-size: 11px; }
.flag { color: #9a5b00; font-size: 11px; display: block; }
.cols { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
.cols h3 { margin-top: 6px; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.figs.small { grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); }
figure.wide { grid-column: 1 / -1; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff;
         break-inside: avoid; page-break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.skip { font-style: italic; color: var(--muted); }
ul.warnings li { margin-bottom: 3px; }
footer { margin-top: 36px; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print {
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .figs, .figs.small { grid-template-columns: 1fr 1fr; }
  .scroll { overflow: visible; }
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{generator}">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def esc(value: Any) -> str:
    """Text for the page: HTML-escaped (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, generator: str) -> str:
    """The whole document. `body` is trusted markup built from escaped pieces."""
    return PAGE.format(csp=esc(CSP), generator=esc(generator), title=esc(title), style=STYLE, body=body)


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n' + "\n".join(p for p in parts if p) + "\n</section>"


def para(text: str, cls: str | None = None) -> str:
    """A paragraph of plain (escaped) text."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def banner(text: str, bad: bool = False) -> str:
    return f'<div class="banner{" bad" if bad else ""}">{esc(text)}</div>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """A table whose header texts are escaped here and whose cells are ALREADY markup (use `esc`
    or `cell`); `numeric` column positions are right-aligned."""
    numeric = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of (label, value) with both escaped; None values are left out."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs if v is not None and v != "")
    return f'<div class="scroll"><table>{rows}</table></div>' if rows else ""


def columns(*parts: str) -> str:
    """Blocks side by side where the page is wide enough (one under the other in print or narrow)."""
    return '<div class="cols">' + "".join(f"<div>{p}</div>" for p in parts if p) + "</div>"


def bullet_list(items: Iterable[str], cls: str | None = None) -> str:
    """A list of plain (escaped) texts."""
    items = list(items)
    if not items:
        return ""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def figure(svg: str, caption: str, wide: bool = False) -> str:
    """An inline SVG (trusted: drawn by report_figures, whose text is escaped by matplotlib's SVG
    writer) with an escaped caption."""
    opening = '<figure class="wide">' if wide else "<figure>"  # wide: a many-panel figure takes the whole row
    return f"{opening}{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def skipped(text: str) -> str:
    return f'<p class="skip">{esc(text)}</p>'
