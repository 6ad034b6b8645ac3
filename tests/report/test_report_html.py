"""The pages of `phenolab.report.html`: self-contained, escaped, well-formed, honest about the verdict."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from phenolab.report.html import figure_to_data_uri, render_index_page, render_run_page, safe_href

EVIL = '<script>alert(1)</script>"onload=x'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BALANCED = ("html", "head", "body", "div", "table", "thead", "tbody", "tr", "td", "th", "section",
            "figure", "figcaption", "pre", "ul", "li", "h1", "h2", "h3", "p", "a", "span", "code")


class _Structure(HTMLParser):
    """Collects tags, links and image sources, and checks that the main structure balances."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.hrefs: list[str] = []
        self.img_srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "a" and "href" in values:
            self.hrefs.append(values["href"] or "")
        if tag == "img":
            self.img_srcs.append(values.get("src") or "")
        if tag in BALANCED:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in BALANCED:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _parse(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    assert page.startswith("<!DOCTYPE html>")
    return parser


def _png_bytes() -> bytes:
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    return base64.b64decode(figure_to_data_uri(fig).split(",", 1)[1])


def _verdict(passed: bool) -> dict[str, Any]:
    checks = [
        {"name": "rank correlation", "measured": 0.93, "op": ">=", "threshold": 0.8, "paper": "0.95",
         "note": "Spearman", "passed": True},
        {"name": "first peak converges first", "measured": 120.0 if passed else None, "op": "<", "threshold": 500,
         "paper": "", "note": "", "passed": passed},
    ]
    return {"experiment": "f-principle", "passed": passed, "checks": checks, "source": "Xu et al. 2019, Fig. 2",
            "reason": "all checks passed" if passed else "failed: first peak converges first = n/a (need < 500)",
            "failure": "", "details": {}}


def _run(**overrides: Any) -> dict[str, Any]:
    run = {"id": "r-0001", "kind": "experiment", "name": "f-principle", "label": "quick", "status": "done",
           "config": {"width": 200, "lr": 1e-3, "nested": {"peaks": [1, 3, 5]}}, "config_hash": "abc123",
           "started": "2024-05-01T10:00:00", "finished": "2024-05-01T10:00:42", "duration_s": 42.0,
           "error": None, "summary": {"final_loss": 1.2e-5}, "verdict": None}
    run.update(overrides)
    return run


def _without_data_uris(page: str) -> str:
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]*", "", page)


# ----------------------------------------------------------------------------- figures

def test_figure_to_data_uri_accepts_figures_bytes_paths_and_data_uris(tmp_path: Path) -> None:
    png = _png_bytes()
    assert png.startswith(PNG_SIGNATURE)
    path = tmp_path / "f.png"
    path.write_bytes(png)
    uri = figure_to_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert figure_to_data_uri(path) == uri
    assert figure_to_data_uri(str(path)) == uri
    assert figure_to_data_uri(uri) == uri
    with pytest.raises(ValueError):
        figure_to_data_uri(b"<html>not an image</html>")
    with pytest.raises(ValueError):
        figure_to_data_uri("data:text/html;base64,PHNjcmlwdD4=")


# ----------------------------------------------------------------------------- run page

def test_run_page_embeds_figures_and_shows_everything() -> None:
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [1, 0])
    page = render_run_page(
        _run(), verdict=_verdict(True), figures={"peak heatmap": fig, "loss": _png_bytes()},
        children=[{"id": "r-0002", "label": "seed 1", "status": "done", "duration_s": 3.5, "error": None}],
        metrics_table=[{"step": 0, "loss": 0.5}, {"step": 100, "loss": 0.01}])
    parsed = _parse(page)

    assert len(parsed.img_srcs) == 2
    assert all(src.startswith("data:image/png;base64,") for src in parsed.img_srcs)
    for text in ("r-0001", "f-principle", "quick", "peak heatmap", "<figcaption>loss</figcaption>",
                 "rank correlation", "Spearman", "0.93", "Xu et al. 2019, Fig. 2", "r-0002", "seed 1",
                 "abc123", "&quot;width&quot;: 200", "2024-05-01T10:00:42", "42.0 s", "final_loss"):
        assert text in page, text
    assert 'class="banner pass"' in page
    for header in ("check", "measured", "op", "threshold", "paper", "passed"):
        assert f"<th>{header}</th>" in page


@pytest.mark.parametrize("passed, banner", [(True, "pass"), (False, "fail")])
def test_banner_follows_verdict_passed(passed: bool, banner: str) -> None:
    page = render_run_page(_run(status="done"), verdict=_verdict(passed), figures={})
    _parse(page)
    assert f'class="banner {banner}"' in page
    other = {"pass": "fail", "fail": "pass"}[banner]
    assert f'class="banner {other}"' not in page
    assert ("<strong>PASS</strong>" in page) is passed


def test_no_verdict_is_grey_and_run_verdict_is_the_default() -> None:
    page = render_run_page(_run(), verdict=None, figures={})
    _parse(page)
    assert 'class="banner none"' in page
    page = render_run_page(_run(verdict=_verdict(False)), figures={})
    assert 'class="banner fail"' in page


def test_minimal_run_dict_is_tolerated() -> None:
    page = render_run_page({}, verdict=None, figures={})
    _parse(page)
    assert "n/a" in page


def test_run_page_escapes_everything_from_the_run() -> None:
    verdict = _verdict(False)
    verdict["checks"][0]["name"] = EVIL
    verdict["checks"][0]["note"] = EVIL
    verdict["reason"] = EVIL
    verdict["source"] = EVIL + " https://example.org"
    page = render_run_page(
        _run(id=EVIL, name=EVIL, label=EVIL, status=EVIL, error=EVIL, config={EVIL: EVIL}, config_hash=EVIL,
             summary={"x": EVIL}),
        verdict=verdict, figures={EVIL: _png_bytes()},
        children=[{"id": EVIL, "label": EVIL, "status": EVIL, "error": EVIL, "href": "javascript:alert(1)"}],
        metrics_table=[{EVIL: EVIL}])
    parsed = _parse(page)

    assert "<script" not in page.lower()
    assert '"onload=' not in page
    assert "&lt;script&gt;" in page
    assert "&quot;onload=" in page
    assert "script" not in parsed.tags
    assert parsed.hrefs == []  # the javascript: href became plain text
    assert "javascript:alert(1)" in page


def test_run_page_is_self_contained() -> None:
    page = render_run_page(_run(), verdict=_verdict(True), figures={"f": _png_bytes()})
    stripped = _without_data_uris(page)
    assert "http://" not in stripped and "https://" not in stripped
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "<style>" in page


# ----------------------------------------------------------------------------- hrefs

@pytest.mark.parametrize("href", ["run.html", "runs/r-1/index.html", "#fig-0", "../x/y.html?a=1&b=2", "r 1.html"])
def test_safe_href_accepts_relative_paths_and_anchors(href: str) -> None:
    assert safe_href(href) == href


@pytest.mark.parametrize("href", ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
                                  "java\tscript:alert(1)", "https://example.org", "http://x", "//evil.org/x",
                                  "\\\\evil.org", "/etc/passwd", "data:text/html,hi", "file:///etc", "", None, 3])
def test_safe_href_rejects_schemes_and_absolute_urls(href: object) -> None:
    assert safe_href(href) is None


# ----------------------------------------------------------------------------- index page

def _rows() -> list[dict[str, Any]]:
    good = _verdict(True)
    bad = _verdict(False)
    return [
        {"name": "f-principle", "title": "Frequency principle", "source": "Xu et al. 2019", "claim": "low first",
         "status": "done", "passed": True, "reason": good["reason"], "checks": good["checks"],
         "duration_s": 75.0, "run_id": "r-1", "href": "runs/r-1/report.html"},
        {"name": "spectral-bias", "title": "Spectral bias", "source": "Rahaman et al. 2019", "claim": "also low first",
         "status": "failed", "passed": False, "reason": bad["reason"], "checks": bad["checks"],
         "duration_s": 3.2, "run_id": "r-2"},
    ]


def test_index_page_table_links_and_grouped_figures() -> None:
    png = _png_bytes()
    page = render_index_page("phenolab verify", _rows(),
                             figures={"f-principle: peak heatmap": png, "spectral-bias: curves": png, "misc": png},
                             notes="quick mode")
    parsed = _parse(page)

    assert "runs/r-1/report.html" in parsed.hrefs
    assert "#fig-0" in parsed.hrefs and "#fig-1" in parsed.hrefs
    assert len(parsed.img_srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in parsed.img_srcs)
    assert "rank correlation = 0.93 (need &gt;= 0.8)" in page
    assert "first peak converges first = n/a (need &lt; 500)" in page
    assert "1 of 2 experiments passed" in page and 'class="banner fail"' in page
    assert page.index('id="fig-0"') < page.index("<figcaption>peak heatmap</figcaption>") < page.index('id="fig-1"')
    assert "<figcaption>misc</figcaption>" in page and 'id="fig-other"' in page
    assert "quick mode" in page and "1 min 15 s" in page
    assert "http://" not in _without_data_uris(page) and "https://" not in _without_data_uris(page)


def test_index_page_all_passed_banner() -> None:
    rows = _rows()[:1]
    page = render_index_page("verify", rows)
    _parse(page)
    assert 'class="banner pass"' in page and "1 of 1 experiments passed" in page


def test_index_page_escapes_and_refuses_unsafe_links() -> None:
    rows = _rows()
    rows[0].update(name=EVIL, title=EVIL, claim=EVIL, source=EVIL, reason=EVIL, status=EVIL, run_id=EVIL,
                   href="javascript:alert(1)")
    rows[0]["checks"] = [{"name": EVIL, "measured": 1.0, "op": "<", "threshold": 2.0, "passed": True}]
    rows[1]["href"] = "https://evil.example/x"
    page = render_index_page(EVIL, rows, figures={f"{EVIL}: {EVIL}": _png_bytes()}, notes=EVIL)
    parsed = _parse(page)

    assert "<script" not in page.lower()
    assert '"onload=' not in page
    assert "&lt;script&gt;" in page
    assert all(h.startswith("#") for h in parsed.hrefs)  # only the internal figure anchor survives
    assert "javascript:alert(1)" in page  # shown as text
    assert 'href="https://' not in page


def test_unreadable_figure_is_reported_not_fatal(tmp_path: Path) -> None:
    page = render_run_page(_run(), verdict=None, figures={"gone": tmp_path / "missing.png", "junk": b"nope"})
    parsed = _parse(page)
    assert parsed.img_srcs == []
    assert page.count("figure unavailable") == 2


def test_the_children_table_shows_the_engine_that_trained_each_run():
    page = render_run_page({"id": 1, "name": "x", "kind": "experiment", "status": "done"},
                           children=[{"id": 2, "label": "seed=0", "status": "done",
                                      "summary": {"engine": "ensemble/fused"}},
                                     {"id": 3, "label": "seed=1", "status": "done", "summary": {"engine": "plain"}}])
    assert "<th>engine</th>" in page.replace(' class="num"', "") or ">engine<" in page
    assert "ensemble/fused" in page and ">plain<" in page
