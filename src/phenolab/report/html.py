"""Self-contained HTML pages for phenolab runs: one page per run, and an index for ``phenolab verify``.

Pages are plain HTML5 with inline CSS and figures embedded as base64 data URIs; they name no
external URL, and a Content-Security-Policy forbids scripts and remote loads outright.
Everything that comes from a run or a user (names, labels, config values, errors, reasons,
check names, captions) is HTML-escaped, and a link is rendered only if its target is a
relative path or a ``#`` anchor. This module takes plain dicts and imports nothing of phenolab.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FigureSource = Union[str, bytes, Path, "Figure"]
"""A figure for a page: a Figure, PNG (or JPEG/GIF/SVG) bytes, a path to such a file, or a data URI."""

_DATA_URI = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*")
_PASS_STATUSES = {"done", "ok", "completed", "finished", "success", "succeeded", "passed"}
_FAIL_STATUSES = {"failed", "error", "errored", "diverged", "timeout", "timed_out", "crashed", "killed"}

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.45rem;margin:.2rem 0 .4rem}
h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d8dee4;padding-bottom:.2rem}
h3{font-size:1rem;margin:1rem 0 .4rem}
.sub{color:#59636e;margin:0 0 .8rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.28rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail td{background:#fff5f4}
.banner{padding:.75rem 1rem;border-radius:6px;margin:.8rem 0;border-left:6px solid}
.banner strong{font-size:1.1rem;margin-right:.6rem}
.banner.pass{background:#e8f5ec;border-color:#1a7f37;color:#0f5323}
.banner.fail{background:#fdecea;border-color:#cf222e;color:#82071e}
.banner.none{background:#f1f3f4;border-color:#8c959f;color:#3d444d}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.muted{color:#59636e}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.8rem;
  border:1px solid #8c959f;color:#3d444d;vertical-align:middle}
.badge.ok{border-color:#1a7f37;color:#1a7f37}.badge.bad{border-color:#cf222e;color:#cf222e}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:1rem}
figure{margin:0}
figure img{max-width:100%;height:auto;border:1px solid #e1e4e8;background:#fff}
figcaption{font-size:.85rem;color:#59636e;text-align:center;margin-top:.2rem}
.missing{border:1px dashed #cf222e;padding:1rem;color:#82071e;font-size:.85rem}
pre{background:#f6f8fa;padding:.7rem .9rem;overflow:auto;font-size:.8rem;border-radius:4px;
  white-space:pre-wrap;word-break:break-word}
pre.error{background:#fdecea;color:#82071e}
ul.measured{margin:0;padding-left:1.1rem}
.notes{white-space:pre-wrap}
code{font-size:.85em}
"""


# ----------------------------------------------------------------------------- values and escaping

def _esc(value: object) -> str:
    """``value`` formatted for display, then HTML-escaped (quotes included)."""
    return html.escape(_fmt(value), quote=True)


def _fmt(value: object) -> str:
    """A short human form of a value: floats to 4 significant digits, ``None`` as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        return str(x) if not math.isfinite(x) else f"{x:.4g}"
    return str(value)


def _fmt_time(value: object) -> str:
    """A timestamp: strings as given, numbers as seconds since the epoch (shown in UTC)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        stamp = dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
        return stamp.isoformat(timespec="seconds").replace("+00:00", " UTC")
    return _fmt(value)


def _fmt_duration(seconds: object) -> str:
    """A duration in seconds as ``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``."""
    if not isinstance(seconds, numbers.Real) or isinstance(seconds, bool) or not math.isfinite(float(seconds)):
        return _fmt(seconds)
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _pretty_json(value: object) -> str:
    """``value`` as indented JSON (sorted keys; unknown types via ``str``)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    except (TypeError, ValueError):  # e.g. keys of mixed types
        return json.dumps(value, indent=2, default=str)


def safe_href(href: object) -> str | None:
    """``href`` if it is a relative path or a ``#`` anchor, else ``None``.

    Rejected: anything with a scheme (``javascript:``, ``http:``, ``data:`` ...), absolute and
    protocol-relative paths (``/x``, ``//host``, ``\\\\host``), and control characters or
    surrounding whitespace (which browsers strip before reading the scheme).
    """
    if not isinstance(href, str) or not href or href != href.strip():
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in href):
        return None
    if href.startswith(("/", "\\")):
        return None
    first_segment = re.split(r"[/?#\\]", href, maxsplit=1)[0]
    if ":" in first_segment:
        return None
    return href


def _link(text_html: str, href: object) -> str:
    """``text_html`` (already escaped) as a link to ``href`` if safe; otherwise the text plus the href as plain text."""
    target = safe_href(href)
    if target is not None:
        return f'<a href="{html.escape(target, quote=True)}">{text_html}</a>'
    if href in (None, ""):
        return text_html
    return f'{text_html} <code class="muted">{_esc(href)}</code>'


def _status_badge(status: object) -> str:
    """The run status as a coloured badge (the colour class is chosen from a fixed list)."""
    key = str(status).lower() if status is not None else ""
    cls = "ok" if key in _PASS_STATUSES else "bad" if key in _FAIL_STATUSES else ""
    return f'<span class="badge {cls}">{_esc(status if status is not None else "unknown")}</span>'


def _passed_cell(passed: object) -> str:
    """PASS / FAIL / an em dash for a verdict or a check."""
    if passed is True:
        return '<span class="ok">PASS</span>'
    if passed is False:
        return '<span class="bad">FAIL</span>'
    return '<span class="muted">—</span>'


# ----------------------------------------------------------------------------- figures

def _image_bytes(source: FigureSource, dpi: int) -> bytes:
    """The image bytes of a Figure (rendered to PNG), of raw bytes, or of a file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    if hasattr(source, "savefig"):
        buffer = io.BytesIO()
        source.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    raise TypeError(f"cannot make an image of {type(source).__name__}")


def _sniff_mime(data: bytes) -> str:
    """The image type of ``data`` from its first bytes; ``ValueError`` if it is not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    raise ValueError("not a PNG, JPEG, GIF or SVG image")


def figure_to_data_uri(fig_or_png: FigureSource, *, dpi: int = 110) -> str:
    """A base64 ``data:`` URI of a figure: a Figure (rendered to PNG at ``dpi``), image bytes, a path, or a data URI.

    A string starting with ``data:`` is taken as a data URI and must be a base64 image one;
    any other string is a path. Raises ``ValueError`` for non-images, ``OSError`` for unreadable files.
    """
    if isinstance(fig_or_png, str) and fig_or_png.startswith("data:"):
        if not _DATA_URI.fullmatch(fig_or_png):
            raise ValueError("only base64 image data URIs are accepted")
        return fig_or_png
    data = _image_bytes(fig_or_png, dpi)
    return f"data:{_sniff_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_html(caption: str, source: FigureSource) -> str:
    """One captioned, embedded figure; a visible note instead if it cannot be read."""
    try:
        uri = figure_to_data_uri(source)
    except (OSError, ValueError, TypeError) as exc:
        return f'<div class="missing">figure unavailable: {_esc(caption)} ({_esc(exc)})</div>'
    return (f'<figure><img src="{html.escape(uri, quote=True)}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _figures_html(figures: Iterable[tuple[str, FigureSource]]) -> str:
    """A grid of captioned figures."""
    items = [_figure_html(caption, source) for caption, source in figures]
    return f'<div class="figs">{"".join(items)}</div>' if items else ""


# ----------------------------------------------------------------------------- tables and page

def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, row_classes: Sequence[str] | None = None,
           num_cols: Sequence[int] = ()) -> str:
    """A table from escaped headers and cells that are already HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        tds = "".join(f'<td class="num">{c}</td>' if j in num_cols else f"<td>{c}</td>" for j, c in enumerate(cells))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, body: str) -> str:
    """A complete HTML5 document: escaped ``title``, inline CSS, ``body`` (already HTML)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title, quote=True)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _banner(verdict: Mapping[str, Any] | None) -> str:
    """PASS (green) / FAIL (red) / no verdict (grey), with the reason and the source."""
    if not verdict:
        return '<div class="banner none"><strong>NO VERDICT</strong>this run was not judged</div>'
    passed = verdict.get("passed") is True
    reason = verdict.get("reason") or verdict.get("failure") or ""
    source = verdict.get("source")
    source_html = f'<div class="muted">source: {_esc(source)}</div>' if source else ""
    return (f'<div class="banner {"pass" if passed else "fail"}"><strong>{"PASS" if passed else "FAIL"}</strong>'
            f"{_esc(reason)}{source_html}</div>")


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> str:
    """The checks of a verdict: check, measured, op, threshold, paper, passed (notes under the name)."""
    rows, classes = [], []
    for check in checks:
        note = check.get("note")
        name = _esc(check.get("name", "")) + (f'<br><span class="muted">{_esc(note)}</span>' if note else "")
        rows.append([name, _esc(check.get("measured")), _esc(check.get("op", "")), _esc(check.get("threshold")),
                     _esc(check.get("paper") or ""), _passed_cell(check.get("passed"))])
        classes.append("fail" if check.get("passed") is False else "")
    return _table(["check", "measured", "op", "threshold", "paper", "passed"], rows,
                  row_classes=classes, num_cols=(1, 3))


def _generic_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A table of dicts; columns are the union of their keys, in first-seen order."""
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    rows = [[_esc(record.get(c, "")) for c in columns] for record in records]
    numeric = [j for j, c in enumerate(columns)
               if all(isinstance(r.get(c), numbers.Real) and not isinstance(r.get(c), bool) for r in records)]
    return _table([str(c) for c in columns], rows, num_cols=numeric)


def _children_table(children: Sequence[Mapping[str, Any]]) -> str:
    """Child runs: id (a link if the child has a safe ``href``), label, status, the engine that
    trained it (its summary's ``engine``), duration, error."""
    rows = [[_link(_esc(c.get("id", "")), c.get("href")), _esc(c.get("label") or c.get("name") or ""),
             _status_badge(c.get("status")), _esc(str((c.get("summary") or {}).get("engine") or "")),
             _esc(_fmt_duration(c.get("duration_s"))),
             f'<span class="bad">{_esc(c["error"])}</span>' if c.get("error") else ""]
            for c in children]
    return _table(["id", "label", "status", "engine", "duration", "error"], rows, num_cols=(4,))


def _run_header(run: Mapping[str, Any]) -> str:
    """The page heading: experiment name, run id, status badge, then kind and label."""
    name = run.get("name") or run.get("kind") or "run"
    return (f'<h1>{_esc(name)} <span class="muted">· run {_esc(run.get("id", ""))}</span> '
            f'{_status_badge(run.get("status"))}</h1>\n'
            f'<p class="sub">kind: {_esc(run.get("kind") or "n/a")} · label: {_esc(run.get("label") or "n/a")}</p>')


def _verdict_sections(verdict: Mapping[str, Any] | None) -> list[str]:
    """The banner, the checks table and any verdict details."""
    parts = [_banner(verdict)]
    if verdict and verdict.get("checks"):
        parts += ["<h2>Checks</h2>", _checks_table(verdict["checks"])]
    if verdict and verdict.get("details"):
        parts += ["<h3>Verdict details</h3>", f"<pre>{_esc(_pretty_json(verdict['details']))}</pre>"]
    return parts


def _config_and_timings(run: Mapping[str, Any]) -> list[str]:
    """The config (hash and pretty JSON) and the timings table."""
    timings = [_esc(_fmt_time(run.get("started"))), _esc(_fmt_time(run.get("finished"))),
               _esc(_fmt_duration(run.get("duration_s")))]
    return ["<h2>Configuration</h2>",
            f'<p class="muted">config hash: <code>{_esc(run.get("config_hash"))}</code></p>',
            f"<pre>{_esc(_pretty_json(run.get('config') or {}))}</pre>",
            "<h2>Timings</h2>", _table(["started", "finished", "duration"], [timings])]


def render_run_page(
    run: Mapping[str, Any],
    *,
    verdict: Mapping[str, Any] | None = None,
    figures: Mapping[str, FigureSource] | None = None,
    children: Sequence[Mapping[str, Any]] = (),
    metrics_table: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """One self-contained HTML page for a run.

    ``run`` has the keys id, kind, name, label, status, config, config_hash, started, finished,
    duration_s, error, summary, verdict (any may be missing). ``verdict`` (a ``Verdict.to_dict()``)
    defaults to ``run["verdict"]``. ``figures`` maps captions to figures, embedded in order;
    ``children`` are child-run dicts (id, label, status, duration_s, error, optional href);
    ``metrics_table`` is a list of flat dicts shown as a table.
    """
    verdict = verdict if verdict is not None else run.get("verdict")
    parts = [_run_header(run), *_verdict_sections(verdict)]
    if run.get("error"):
        parts += ["<h2>Error</h2>", f'<pre class="error">{_esc(run["error"])}</pre>']
    if figures:
        parts += ["<h2>Figures</h2>", _figures_html(figures.items())]
    if metrics_table:
        parts += ["<h2>Metrics</h2>", _generic_table(metrics_table)]
    if children:
        parts += [f"<h2>Child runs ({len(children)})</h2>", _children_table(children)]
    if run.get("summary"):
        parts += ["<h2>Summary</h2>", f"<pre>{_esc(_pretty_json(run['summary']))}</pre>"]
    parts += _config_and_timings(run)
    title = f"phenolab · {_fmt(run.get('name') or run.get('kind') or 'run')} · run {_fmt(run.get('id', ''))}"
    return _page(title, "\n".join(parts))


# ----------------------------------------------------------------------------- index page

def _measured_list(checks: Sequence[Mapping[str, Any]]) -> str:
    """``name = value (need op threshold)`` per check, marked ✓ / ✗."""
    items = []
    for c in checks:
        passed = c.get("passed")
        mark = ('<span class="ok">✓</span>' if passed is True
                else '<span class="bad">✗</span>' if passed is False else "")
        items.append(f"<li>{mark} {_esc(c.get('name', ''))} = {_esc(c.get('measured'))} "
                     f"(need {_esc(c.get('op', ''))} {_esc(c.get('threshold'))})</li>")
    return f'<ul class="measured">{"".join(items)}</ul>' if items else ""


def _group_figures(names: Sequence[str], figures: Mapping[str, FigureSource]
                   ) -> tuple[dict[str, list[tuple[str, FigureSource]]], list[tuple[str, FigureSource]]]:
    """Figures grouped by experiment: a key ``"<name>: <caption>"`` goes under ``<name>``, the rest apart.

    Returns the groups (in the order of ``names``, empty ones left out) and the ungrouped figures.
    """
    groups: dict[str, list[tuple[str, FigureSource]]] = {name: [] for name in names}
    other: list[tuple[str, FigureSource]] = []
    for key, source in figures.items():
        prefix, sep, caption = key.partition(": ")
        if sep and prefix in groups:
            groups[prefix].append((caption, source))
        else:
            other.append((key, source))
    return {name: items for name, items in groups.items() if items}, other


def _index_row(row: Mapping[str, Any], name: str, anchor: str | None) -> list[str]:
    """The cells of one experiment's row on the index page."""
    run_id = row.get("run_id", row.get("id"))
    has_run = run_id is not None or bool(row.get("href"))
    run_html = _link(_esc(run_id if run_id is not None else "report"), row.get("href")) if has_run else ""
    return [_link(_esc(name), f"#{anchor}") if anchor else _esc(name), _esc(row.get("title") or ""),
            _esc(row.get("claim") or ""), _esc(row.get("source") or ""), _status_badge(row.get("status")),
            _passed_cell(row.get("passed")), _esc(row.get("reason") or ""), _measured_list(row.get("checks") or []),
            _esc(_fmt_duration(row.get("duration_s", row.get("duration")))), run_html]


def render_index_page(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    figures: Mapping[str, FigureSource] | None = None,
    notes: str = "",
) -> str:
    """A summary page of several experiments (``phenolab verify``): a table, then figures per experiment.

    Each row may have name, title, source, claim, status, passed (True/False/None), reason,
    checks (``Check.to_dict()`` dicts), duration_s, run_id (or id) and href (a link to the
    run's own page, rendered only if relative). Figure keys ``"<name>: <caption>"`` are shown
    under the experiment ``<name>``.
    """
    names = [str(row.get("name", "")) for row in rows]
    groups, other = _group_figures(names, figures or {})
    anchors = {name: f"fig-{i}" for i, name in enumerate(groups)}

    table_rows = [_index_row(row, name, anchors.get(name)) for row, name in zip(rows, names)]
    classes = ["fail" if row.get("passed") is False else "" for row in rows]

    n_passed = sum(1 for row in rows if row.get("passed") is True)
    all_passed = bool(rows) and n_passed == len(rows)
    parts = [f"<h1>{_esc(title)}</h1>",
             f'<div class="banner {"pass" if all_passed else "fail" if rows else "none"}">'
             f'<strong>{"PASS" if all_passed else "FAIL" if rows else "EMPTY"}</strong>'
             f"{n_passed} of {len(rows)} experiments passed</div>"]
    if notes:
        parts.append(f'<p class="notes">{_esc(notes)}</p>')
    parts.append(_table(["experiment", "title", "claim", "source", "status", "verdict", "reason", "measured",
                         "duration", "run"], table_rows, row_classes=classes, num_cols=(8,)))
    for name, items in groups.items():
        parts.append(f'<section id="{anchors[name]}"><h2>{_esc(name)}</h2>{_figures_html(items)}</section>')
    if other:
        parts.append(f'<section id="fig-other"><h2>Other figures</h2>{_figures_html(other)}</section>')
    return _page(title, "\n".join(parts))
