"""``runs/index.html``: the run report a researcher can send to a colleague.

Each study, in the README's order, opens with its title, its question and this run's headline
answer (computed from the run's ``metrics.json``), then its key chart, the notebook's own
conclusions, its tables formatted for reading and an HTML rendering of the executed notebook.
A failed study shows its error instead of results. Finished sweeps follow.

The page is one self-contained HTML file (inline CSS, no script) that links to the files beside
it; the notebook renderings need no network either (no CDN script: see ``notebook_html``).
This module knows each study only through the files its run writes; it imports no study code.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from latentlab import io

SKIP_TABLES = {"history", "status", "results"}  # per-epoch logs and sweep dumps: linked, not shown
OPEN_ROWS = 12  # a table longer than this is collapsed under its title
MAX_ROWS = 200  # beyond this a table is cut (the CSV link has every row)
STATUS_FILE = "run_status.json"  # written by latentlab.runall for each study of `make run`
Metrics = dict[str, Any]


# ---------------------------------------------------------------- headlines, one per study
# Each reads only this run's metrics.json and returns None when a number it needs is missing
# (a run on the user's own data may skip a part); the report then shows the notebook's first
# conclusion instead.

def _f(value: Any) -> str:
    return f"{float(value):.3f}"


def _h2_headline(m: Metrics) -> str | None:
    verdict, auc = m["leakage_verdict"], m["leakage_auc"]
    where = ", ".join(verdict.get("splits") or []) or "the main split"
    scores = ", ".join(f"{name} {_f(auc[name])}" for name in verdict.get("per_embedding", {}) if name in auc)
    text = (f"Verdict: <strong>{html.escape(verdict['overall'])}</strong> — a {html.escape(verdict['probe'])} "
            f"probe predicts the chip from the unsupervised embeddings with AUC {scores} on {html.escape(where)} "
            "(0.5 = chance).")
    best = m.get("best_mitigation")
    if best:
        measure = html.escape(str(best.get("biology_measure", "biology")))
        if m.get("mitigation_goal_met"):
            text += (f" Best mitigation: <strong>{html.escape(best['label'])}</strong>, leakage AUC "
                     f"{_f(best['leakage_auc'])} with {measure} {_f(best['biology'])} "
                     f"({float(best['biology_change_vs_ae']):+.3f} against the plain AE).")
        else:
            text += (f" No mitigation met the study's goal; the closest, {html.escape(best['label'])}, "
                     f"reaches leakage AUC {_f(best['leakage_auc'])} with {measure} {_f(best['biology'])}.")
    return text


def _sfmn_headline(m: Metrics) -> str | None:
    models = {name: row for name, row in m["models"].items() if row.get("test_aupr") is not None}
    ranked = sorted(models, key=lambda name: -models[name]["test_aupr"])
    sfmn = models["sfmn"]
    folds, seeds = sfmn.get("n_folds"), sfmn.get("n_seeds")

    def score(name: str) -> str:
        sd = models[name].get("test_aupr_sd")
        return f"{_f(models[name]['test_aupr'])}" + (f" ± {_f(sd)}" if sd is not None else "")

    scope = f"On unseen cell lines ({folds} held out × {seeds} seed{'s' if seeds != 1 else ''}), "
    if ranked[0] == "sfmn":
        runner_up = f", ahead of {html.escape(ranked[1])} {score(ranked[1])}" if len(ranked) > 1 else ""
        text = f"{scope}SFMN has the best AUPR, <strong>{score('sfmn')}</strong>{runner_up}"
    else:
        text = (f"{scope}the best AUPR is <strong>{html.escape(ranked[0])} {score(ranked[0])}</strong>; "
                f"SFMN scores {score('sfmn')} (rank {ranked.index('sfmn') + 1} of {len(ranked)})")
    text += "; one seed, so the differences are not tested." if seeds == 1 else "."
    if sfmn.get("gate_recovery_unseen") is not None:
        text += f" Its gates recover the true motifs with AUROC {_f(sfmn['gate_recovery_unseen'])} (0.5 = chance)."
    verdicts = [row.get("verdict", "") for row in m.get("success", [])]
    if verdicts:
        met = sum(v == "met" for v in verdicts)
        untested = sum(v.startswith(("not tested", "not resolved")) for v in verdicts)
        text += f" Success criteria met: {met} of {len(verdicts)}" + (f" ({untested} not tested)." if untested else ".")
    return text


def _recon_headline(m: Metrics) -> str | None:
    gap = m["beagle_gap"]
    text = (f"Best arm <strong>{html.escape(str(gap['best_arm']))}</strong> (γ {gap['best_gamma']:g}): "
            f"ALT-F1 {_f(gap['best_f1_common'])} on common and {_f(gap['best_f1_rare'])} on rare variants, "
            f"{float(gap['vote_gain_common']):+.3f} on common variants over the retrieval vote alone.")
    if gap.get("beagle"):
        text += (f" Beagle 5.4 is {float(gap['common_gap']):+.3f} (common) and {float(gap['rare_gap']):+.3f} (rare) "
                 "from it (Beagle − arm).")
    for name, verdict in m.get("verdicts", {}).items():
        if gap.get("best_gamma") is not None and verdict.get("gamma") == gap["best_gamma"]:
            text += (f" Arm ranking at {html.escape(name.replace('gamma', 'γ '))}: "
                     f"{' > '.join(verdict['measured_ranking'])} (the seed predicted "
                     f"{' > '.join(verdict['seed_ranking'])}) — {html.escape(verdict['seed_ranking_confirmed'])}.")
    return text


def _setvae_headline(m: Metrics) -> str | None:
    before, after = (m.get("params", {}).get("references") or ["before (seed)", "after (seed)"])[:2]
    b, a = m[before], m[after]
    text = (f"Posterior collapse: '{html.escape(before)}' collapsed on <strong>{b['collapsed_seeds']}</strong> seeds, "
            f"'{html.escape(after)}' on <strong>{a['collapsed_seeds']}</strong>. Test AUROC "
            f"{_f(b['auroc_mean'])} → {_f(a['auroc_mean'])}")
    compared = next((c.split(":", 1)[1].strip() for c in m.get("conclusions", [])
                     if c.startswith("after vs before") and ":" in c), None)
    text += f" ({html.escape(compared)})." if compared else "."
    baselines = {name: row["auroc"] for name, row in m.get("baselines", {}).items() if row.get("auroc") is not None}
    if baselines:
        best = max(baselines, key=baselines.get)
        text += f" Best baseline: {html.escape(best)} at {_f(baselines[best])}."
    return text


@dataclasses.dataclass(frozen=True)
class Study:
    """What the report says about one study's run directory (titles and questions as in the README)."""

    directory: str
    title: str
    question: str
    key_chart: str
    key_tables: tuple[str, ...]
    headline: Callable[[Metrics], str | None]


STUDIES: tuple[Study, ...] = (
    Study("h2", "Study 1 · H2 context leakage",
          "Do unsupervised scRNA-seq embeddings (PCA, AE) encode the chip, and which mitigation removes it "
          "while keeping biology?", "tradeoff", ("verdict", "verdicts"), _h2_headline),
    Study("sfmn", "Study 2 · SFMN: sparse feature modulation for EPI on unseen cell lines",
          "Enhancer–promoter interaction on unseen cell lines through sparse cell-line gates over motif features "
          "— and is the trained model the designed one?", "loco", ("success", "summary"), _sfmn_headline),
    Study("recon", "Study 3 · Reconstruction-loss ablation in a BERT+RAG genotype imputer",
          "Does the imputer's reconstruction loss (and focal γ = 5) hurt? Arms A–E against Beagle 5.4.",
          "f1_by_arm", ("summary",), _recon_headline),
    Study("setvae", "Study 4 · Hierarchical SetVAE: posterior collapse",
          "Which fixes prevent posterior collapse in a hierarchical SetVAE on irregular clinical time series?",
          "diagnostics", ("scores", "runs"), _setvae_headline),
)
STUDY_ORDER = tuple(s.directory for s in STUDIES)


def study_for(directory: Path) -> Study:
    """The known study of a run directory, or a plain description of any other metrics.json folder."""
    for study in STUDIES:
        if study.directory == directory.name:
            return study
    return Study(directory.name, directory.name, "", "", (), lambda m: None)


def headline(study: Study, metrics: Metrics) -> str:
    """This run's answer in a sentence or three; the notebook's first conclusion when a number is missing."""
    try:
        text = metrics.get("headline") or study.headline(metrics)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        text = None
    if text:
        return text
    conclusions = metrics.get("conclusions") or []
    return _inline_markup(conclusions[0]) if conclusions else "This run's metrics.json holds no conclusions."


# ---------------------------------------------------------------- tables

NUMBER_TEXT = r"—|[-+−]?[\d.,]+(e[-+]?\d+)?%?( ± [\d.,]+(e[-+]?\d+)?%?)?"


def _column_format(values: pd.Series) -> Callable[[float], str]:
    """One rounding for a whole numeric column, so its numbers line up: whole numbers plain,
    at most three decimals when the column's values are below 10, one below 1,000, none above."""
    finite = values[values.map(math.isfinite)]
    if finite.empty or (finite == finite.round()).all() and finite.abs().max() < 1e15:
        return lambda v: f"{int(v):,}" if abs(v) >= 10_000 else str(int(v))
    largest = finite.abs().max()
    if largest < 0.001:
        return lambda v: f"{v:.2e}"
    if largest >= 1000:
        return lambda v: f"{v:,.0f}"
    most = 3 if largest < 10 else 1
    # no more decimals than the column's values have (γ 2.5 and 5 read "2.5", "5.0", not "2.500")
    decimals = next(d for d in range(1, most + 1) if d == most or (finite.round(d) == finite).all())
    return lambda v: f"{v:.{decimals}f}"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or isinstance(value, float) and math.isnan(value)


def readable_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Numbers rounded as text and columns with no value at all dropped.

    Returns the table, the notes to print under it and the names of its numeric columns.
    """
    empty = [c for c in frame.columns if frame[c].isna().all()]
    notes = []
    if empty:
        spread = all(re.search(r"(_sd|_std)$", str(c)) for c in empty)
        why = " (a spread needs at least two seeds)" if spread else ""
        notes.append(f"{len(empty)} column{'s' if len(empty) > 1 else ''} without values left out{why}: "
                     + ", ".join(map(str, empty)))
    shown = frame.drop(columns=empty).copy()
    numeric = []
    for column in shown.columns:
        values = shown[column]
        if pd.api.types.is_bool_dtype(values):
            shown[column] = values.map({True: "yes", False: "no"})
        elif pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
            fmt = _column_format(values.dropna().astype(float))
            shown[column] = values.map(lambda v, fmt=fmt: "—" if _missing(v) or not math.isfinite(v) else fmt(v))
        else:
            shown[column] = values.map(lambda v: "—" if _missing(v) else str(v))
            if shown[column].str.fullmatch(NUMBER_TEXT).all():  # "0.712 ± 0.031", "23.5%", "+0.015"
                numeric.append(column)
    return shown, notes, numeric


LABEL_CHARS = 40  # a text column no longer than this holds labels: kept on one line


def _table_markup(shown: pd.DataFrame, numeric: list[str]) -> str:
    """A plain HTML table: labels on one line, numbers right-aligned, prose left and wrapping; columns
    stay in the study's order (the first one stays in view while a wide table scrolls)."""
    longest = {c: shown[c].str.len().max() if c not in numeric else 0 for c in shown.columns}
    labels = [c for c in shown.columns if c not in numeric and longest[c] <= LABEL_CHARS]
    kinds = ["label" if c in labels else "num" if c in numeric else "text" for c in shown.columns]
    head = "".join(f'<th class="{k}">{html.escape(str(c))}</th>' for c, k in zip(shown.columns, kinds, strict=True))
    rows = "".join("<tr>" + "".join(f'<td class="{k}">{html.escape(str(v))}</td>'
                                    for v, k in zip(row, kinds, strict=True)) + "</tr>"
                   for row in shown.itertuples(index=False))
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def table_html(frame: pd.DataFrame, title: str, href: str) -> str:
    """One table in its own horizontally scrolling box; long ones collapsed, very long ones cut."""
    shown, notes, numeric = readable_table(frame)
    rows = len(shown)
    if rows > MAX_ROWS:
        notes.append(f"first {MAX_ROWS} of {rows} rows shown; the CSV has all")
        shown = shown.head(MAX_ROWS)
    size = f"{rows} row{'s' if rows != 1 else ''} × {shown.shape[1]} columns"
    body = (f'<div class="table-box">{_table_markup(shown, numeric)}</div>'
            + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes))
    heading = f'{html.escape(title)} <span class="dim">{size} · <a href="{href}">CSV</a></span>'
    if rows > OPEN_ROWS:
        return f'<details class="table"><summary>{heading}</summary>{body}</details>'
    return f'<div class="table"><h4>{heading}</h4>{body}</div>'


def _read_table(csv: Path) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(csv)
    except pd.errors.EmptyDataError:  # a table the run left empty (e.g. ablations switched off)
        return None
    return None if frame.empty else frame


# ---------------------------------------------------------------- notebooks as HTML

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# code spans and fences are left alone; then $$display$$ and $inline$ math (no space inside the dollars)
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])", re.S)


def math_to_mathml(markdown: str) -> str:
    """Markdown with its TeX math replaced by MathML; a formula latex2mathml cannot read stays as typed."""
    from latex2mathml.converter import convert

    def one(match: re.Match) -> str:
        display, tex = (True, match.group(1)) if match.group(1) is not None else (False, match.group(2))
        try:
            return convert(tex.strip(), display="block" if display else "inline")
        except Exception:  # noqa: BLE001 — any parser failure: show the TeX rather than lose the text
            return match.group(0)

    return "".join(part if i % 2 else _MATH.sub(one, part) for i, part in enumerate(_CODE.split(markdown)))


def notebook_html(notebook: Path) -> Path:
    """``<notebook>.html`` beside the executed notebook, readable offline.

    nbconvert's lab template loads require.js, MathJax, mermaid and the widget manager from CDNs;
    none is needed to read a static notebook, so this template drops them (its CSS is inline).
    Widget outputs would render as empty boxes without the manager, so their text fallback is
    shown. LaTeX in markdown (``$…$``, ``$$…$$``) becomes MathML, which browsers draw natively.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source)
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}) and len(output["data"]) > 1:
                del output["data"][WIDGET_VIEW]
    quiet = logging.getLogger("latentlab.report.nbconvert")  # not "alt text is missing" once per chart
    quiet.setLevel(logging.ERROR)
    exporter = HTMLExporter(template_name="lab", template_file="latentlab_offline.html.j2", log=quiet,
                            extra_loaders=[jinja2.DictLoader({"latentlab_offline.html.j2": OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    return io.atomic_write(notebook.with_suffix(".html"), lambda p: p.write_text(body, encoding="utf-8"))


def _notebook_links(directory: Path) -> str:
    """Links to each executed notebook's HTML rendering (made now if missing or stale), and the .ipynb."""
    links = []
    for nb in sorted(directory.glob("*.ipynb")):
        page = nb.with_suffix(".html")
        try:
            if not page.exists() or page.stat().st_mtime < nb.stat().st_mtime:
                notebook_html(nb)
            links.append(f'<a href="{directory.name}/{page.name}">{html.escape(nb.stem)} (HTML)</a> '
                         f'<span class="dim">· <a href="{directory.name}/{nb.name}">.ipynb</a></span>')
        except Exception as exc:  # noqa: BLE001 — a notebook nbconvert cannot read must not cost the report
            links.append(f'<a href="{directory.name}/{nb.name}">{html.escape(nb.name)}</a> '
                         f'<span class="failed">(no HTML rendering: {html.escape(type(exc).__name__)}: '
                         f"{html.escape(str(exc)[:200])})</span>")
    return " · ".join(links)


# ---------------------------------------------------------------- sections

def _read_status(directory: Path) -> dict | None:
    path = directory / STATUS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _inline_markup(text: str) -> str:
    """The notebooks' conclusions use **bold** and `code`; everything else is escaped."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _heading(study: Study, anchor: str, badge: str = "") -> str:
    question = f'<p class="question">{html.escape(study.question)}</p>' if study.question else ""
    return f'<h2 id="{anchor}">{html.escape(study.title)}{badge}</h2>{question}'


def failed_section(directory: Path, status: dict) -> str:
    """HTML for a study whose notebook failed in this job: the cause and the executed notebook.

    Results an earlier run left in the directory are not shown: they would read as this run's.
    """
    study = study_for(directory)
    cell = f" in cell In [{status['failed_cell']}]" if status.get("failed_cell") is not None else ""
    links = _notebook_links(directory)
    link = f"; the executed notebook stops at the failing cell: {links}" if links else ""
    return (_heading(study, directory.name, ' — <span class="failed">FAILED</span>')
            + f"<p>preset <code>{html.escape(str(status['preset']))}</code>, started "
            f"{html.escape(status['started'])}, stopped after {status['seconds']:.0f} s{cell}{link}.</p>"
            f'<pre class="failed">{html.escape(status["error"])}</pre>')


def _run_line(directory: Path, metrics: Metrics, status: dict | None) -> str:
    params, info = metrics.get("params", {}), metrics.get("run_info", {})
    seconds = status["seconds"] if status else metrics.get("seconds")
    parts = [f"preset <code>{html.escape(str(params.get('preset', '?')))}</code>",
             f"ran {seconds:.0f} s" if isinstance(seconds, int | float) else "run time not recorded"]
    if info.get("written_at"):
        parts.append(html.escape(info["written_at"].replace("T", " ").replace("+00:00", " UTC")))
    if info.get("git_commit"):
        parts.append(f"commit <code>{html.escape(info['git_commit'][:7])}</code>"
                     + (" (uncommitted changes)" if info.get("git_dirty") else ""))
    parts.append(f'<a href="{directory.name}/metrics.json">metrics.json</a>')
    return '<p class="meta">' + " · ".join(parts) + "</p>"


def _figure(directory: Path, png: Path, css: str = "") -> str:
    return (f'<figure class="{css}"><img src="{directory.name}/{png.name}" alt="{html.escape(png.stem)} chart">'
            f"<figcaption>{html.escape(png.stem.replace('_', ' '))}</figcaption></figure>")


def study_section(directory: Path) -> str:
    """HTML for one study run directory (anything holding a metrics.json or a failed run status)."""
    status = _read_status(directory)
    if status is not None and not status["ok"]:
        return failed_section(directory, status)
    study = study_for(directory)
    try:
        metrics = json.loads((directory / "metrics.json").read_text())
    except (OSError, ValueError) as exc:  # one unreadable study must not cost the others their report
        return (_heading(study, directory.name, ' — <span class="failed">metrics.json unreadable</span>')
                + f'<pre class="failed">{html.escape(f"{directory.name}/metrics.json: {exc}")}</pre>')
    parts = [_heading(study, directory.name), f'<p class="headline">{headline(study, metrics)}</p>',
             _run_line(directory, metrics, status)]
    charts = sorted(directory.glob("*.png"))
    key = [p for p in charts if p.stem == study.key_chart] or charts[:1]
    parts += [_figure(directory, p, "key") for p in key]
    conclusions = metrics.get("conclusions") or []
    if conclusions:
        parts.append("<h3>What the notebook concluded</h3><ul class=\"conclusions\">"
                     + "".join(f"<li>{_inline_markup(c)}</li>" for c in conclusions) + "</ul>")
    tables = {csv.stem: frame for csv in sorted(directory.glob("*.csv"))
              if csv.stem not in SKIP_TABLES and (frame := _read_table(csv)) is not None}
    order = [t for t in study.key_tables if t in tables] + [t for t in tables if t not in study.key_tables]
    if order:
        parts.append("<h3>Tables</h3>")
        parts += [table_html(tables[t], t.replace("_", " "), f"{directory.name}/{t}.csv") for t in order]
    rest = [p for p in charts if p not in key]
    if rest:
        parts.append(f"<details><summary>More charts ({len(rest)})</summary><div class=\"gallery\">"
                     + "".join(_figure(directory, p) for p in rest) + "</div></details>")
    links = _notebook_links(directory)
    if links:
        parts.append(f'<p class="meta">Executed notebook: {links}</p>')
    logs = [csv for csv in sorted(directory.glob("*.csv")) if csv.stem in SKIP_TABLES]
    if logs:
        parts.append('<p class="meta">Logs: ' + " · ".join(
            f'<a href="{directory.name}/{csv.name}">{html.escape(csv.name)}</a>' for csv in logs)
            + " (per-epoch losses and monitors)</p>")
    parts.append("<details><summary>Parameters</summary><pre>"
                 f"{html.escape(json.dumps(metrics.get('params', {}), indent=2))}</pre></details>")
    return "\n".join(parts)


def sweep_section(directory: Path, runs: Path) -> str:
    """HTML for one sweep directory: its summary over seeds (mean ± sd), chart and table links."""
    from latentlab.sweep import results as sweeps

    rel = directory.relative_to(runs).as_posix()
    summary = pd.read_csv(directory / "summary.csv")
    status = pd.read_csv(directory / "status.csv") if (directory / "status.csv").exists() else None
    done = f"{int(status['ok'].sum())}/{len(status)} points complete · " if status is not None else ""
    parts = [f'<h2 id="sweep-{html.escape(directory.name)}">sweep: {html.escape(directory.name)}</h2>',
             f'<p class="meta">{done}<a href="{rel}/results.csv">results.csv</a> (one row per point) · '
             f'<a href="{rel}/summary.csv">summary.csv</a></p>']
    if (directory / "summary.png").exists():
        parts.append(f'<figure class="key"><img src="{rel}/summary.png" alt="sweep summary chart">'
                     "<figcaption>mean ± sd over seeds</figcaption></figure>")
    parts.append(table_html(sweeps.format_summary(summary), "summary over seeds (mean ± sd)", f"{rel}/summary.csv"))
    return "\n".join(parts)


# ---------------------------------------------------------------- the page

def _study_rank(directory: Path) -> tuple[int, str]:
    """Studies in the order of the README (1–4), anything else after them by name."""
    name = directory.name
    return (STUDY_ORDER.index(name) if name in STUDY_ORDER else len(STUDY_ORDER), name)


def _failed(studies: list[Path]) -> list[str]:
    return [d.name for d in studies if (s := _read_status(d)) is not None and not s["ok"]]


def _contents(studies: list[Path], sweeps: list[Path]) -> str:
    failed = set(_failed(studies))
    items = [f'<li><a href="#{d.name}">{html.escape(study_for(d).title)}</a>'
             + (' <span class="failed">FAILED</span>' if d.name in failed else "") + "</li>" for d in studies]
    items += [f'<li><a href="#sweep-{html.escape(d.name)}">sweep: {html.escape(d.name)}</a></li>' for d in sweeps]
    return f'<nav><ol>{"".join(items)}</ol></nav>' if items else ""


STYLE = """
:root { --ink: #1f2328; --dim: #656d76; --line: #d0d7de; --soft: #f6f8fa; --accent: #0969da; --bad: #b00020; }
* { box-sizing: border-box; }
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1140px; overflow-wrap: anywhere; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.35rem; margin: 2.8rem 0 .2rem; padding-top: 1rem; border-top: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
h4 { font-size: .95rem; margin: 0 0 .3rem; font-weight: 600; }
a { color: var(--accent); }
code { font-size: .88em; background: var(--soft); padding: 0 .25em; border-radius: 3px; }
.question { color: var(--dim); font-style: italic; margin: .2rem 0 .8rem; }
.headline { font-size: 1.08rem; background: #eef6ff; border-left: 4px solid var(--accent);
            padding: .7rem 1rem; margin: .8rem 0; border-radius: 0 4px 4px 0; }
.meta, .dim, .note { color: var(--dim); font-size: .85rem; }
.note { margin: .2rem 0 0; }
nav ol { columns: 2; margin: .5rem 0 0; padding-left: 1.4rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
figure.key img { border: 1px solid var(--line); border-radius: 4px; padding: .5rem; background: #fff; }
figcaption { font-size: .8rem; color: var(--dim); margin-top: .2rem; }
.gallery { display: flex; flex-wrap: wrap; gap: 1rem; }
.gallery figure { flex: 1 1 420px; max-width: 100%; }
ul.conclusions li { margin-bottom: .35rem; }
.table { margin: 0 0 1.2rem; }
details { margin: .6rem 0 1rem; }
details > summary { cursor: pointer; font-weight: 600; font-size: .95rem; }
details.table > summary { margin-bottom: .3rem; }
.table-box { overflow-x: auto; max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
table.data { border-collapse: collapse; font-size: .82rem; font-variant-numeric: tabular-nums; }
table.data { overflow-wrap: normal; }
table.data th { background: var(--soft); white-space: nowrap; font-weight: 600; }
table.data th, table.data td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
table.data .num { text-align: right; white-space: nowrap; }
table.data .label { text-align: left; white-space: nowrap; }
table.data .text { text-align: left; }
table.data td.text { min-width: 14rem; max-width: 32rem; }
table.data tr > :first-child { position: sticky; left: 0; background: #fff; box-shadow: 1px 0 0 #eaeef2; }
table.data thead tr > :first-child { background: var(--soft); }
table.data tr:hover td { background: #fafbfc; }
pre { white-space: pre-wrap; background: var(--soft); padding: .6rem; border-radius: 4px; font-size: .8rem; }
.failed { color: var(--bad); } pre.failed { background: #fdecee; }
"""


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def build_index(runs: str | Path = "runs") -> Path:
    """Write ``runs/index.html`` from every ``runs/<study>/metrics.json`` or failed run status and every
    finished sweep's ``runs/sweeps/<grid>/summary.csv``."""
    runs = Path(runs)
    found = {p.parent for p in runs.glob("*/metrics.json")} | {p.parent for p in runs.glob(f"*/{STATUS_FILE}")}
    studies = sorted(found, key=_study_rank)
    sweeps = sorted(p.parent for p in runs.glob("sweeps/*/summary.csv"))
    sections = [study_section(d) for d in studies] + [sweep_section(d, runs) for d in sweeps]
    body = "\n".join(f"<section>{s}</section>" for s in sections) or \
        "<p>No study has been run yet: <code>make run</code>.</p>"
    failed = _failed(studies)
    failed_note = f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>latentlab run report</title><style>{STYLE}</style></head><body>
<h1>latentlab — run report</h1>
<p class="meta">{_count(len(studies), "study", "studies")}{failed_note}, {_count(len(sweeps), "sweep")} · built {built}. Each study: the question,
this run's answer, the key chart, the notebook's conclusions, its tables and the executed notebook.</p>
{_contents(studies, sweeps)}
{body}
</body></html>
"""
    return io.atomic_write(runs / "index.html", lambda p: p.write_text(page, encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m latentlab.report",
                                     description="Write RUNS/index.html from every study's outputs in RUNS.")
    parser.add_argument("runs", nargs="?", default="runs", help="the runs folder (default: runs)")
    print(build_index(parser.parse_args(argv).runs))


if __name__ == "__main__":
    main()
