"""``runs/index.html``: one page with every study's key tables, main charts and notebook links."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from latentlab import io

SKIP_TABLES = {"history", "status", "results"}
MAX_ROWS = 30


STUDY_ORDER = ("h2_leakage", "sfmn", "recon_ablation", "setvae_collapse")
STATUS_FILE = "run_status.json"  # written by latentlab.runall for each study of `make run`


def _read_status(directory: Path) -> dict | None:
    path = directory / STATUS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def failed_section(directory: Path, status: dict) -> str:
    """HTML for a study whose notebook failed in this job: the cause and the executed notebook.

    Results an earlier run left in the directory are not shown: they would read as this run's.
    """
    notebook = f"{status['notebook']}.ipynb"
    cell = f" in cell In [{status['failed_cell']}]" if status.get("failed_cell") is not None else ""
    link = (f'; the executed notebook stops at the failing cell: <a href="{directory.name}/{notebook}">'
            f"{html.escape(notebook)}</a>") if (directory / notebook).exists() else ""
    return (f'<h2>{html.escape(directory.name)} — <span class="failed">FAILED</span></h2>'
            f"<p>preset <code>{html.escape(str(status['preset']))}</code>, started {html.escape(status['started'])}, "
            f"stopped after {status['seconds']:.0f} s{cell}{link}.</p>"
            f'<pre class="failed">{html.escape(status["error"])}</pre>')


def study_section(directory: Path) -> str:
    """HTML for one study run directory (anything holding a metrics.json or a failed run status)."""
    status = _read_status(directory)
    if status is not None and not status["ok"]:
        return failed_section(directory, status)
    metrics = json.loads((directory / "metrics.json").read_text())
    params = metrics.get("params", {})
    seconds = metrics.get("seconds")
    parts = [f"<h2>{html.escape(directory.name)}</h2>"]
    notebooks = sorted(directory.glob("*.ipynb"))
    links = " · ".join(f'<a href="{directory.name}/{nb.name}">{html.escape(nb.name)}</a>' for nb in notebooks)
    timing = f"run time {seconds:.0f} s" if isinstance(seconds, int | float) else "run time not recorded"
    parts.append(f"<p>{timing}; preset <code>{html.escape(str(params.get('preset', '?')))}</code>"
                 f"{'; executed notebook: ' + links if links else ''}; "
                 f'<a href="{directory.name}/metrics.json">metrics.json</a></p>')
    for csv in sorted(directory.glob("*.csv")):
        if csv.stem in SKIP_TABLES:
            continue
        try:
            frame = pd.read_csv(csv)
        except pd.errors.EmptyDataError:  # a table the run left empty (e.g. ablations switched off)
            continue
        if frame.empty:
            continue
        note = f" (first {MAX_ROWS} of {len(frame)} rows)" if len(frame) > MAX_ROWS else ""
        parts.append(f"<h3>{html.escape(csv.stem)}{note}</h3>")
        parts.append(frame.head(MAX_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    for png in sorted(directory.glob("*.png")):
        parts.append(f'<figure><img src="{directory.name}/{png.name}" alt="{png.stem}">'
                     f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
    parts.append("<details><summary>parameters</summary><pre>"
                 f"{html.escape(json.dumps(params, indent=2))}</pre></details>")
    return "\n".join(parts)


def sweep_section(directory: Path, runs: Path) -> str:
    """HTML for one sweep directory: its summary over seeds (mean ± sd), chart and table links."""
    from latentlab import sweep

    rel = directory.relative_to(runs).as_posix()
    summary = pd.read_csv(directory / "summary.csv")
    status = pd.read_csv(directory / "status.csv") if (directory / "status.csv").exists() else None
    done = f"{int(status['ok'].sum())}/{len(status)} points complete; " if status is not None else ""
    parts = [f"<h2>sweep: {html.escape(directory.name)}</h2>",
             f'<p>{done}<a href="{rel}/results.csv">results.csv</a> (one row per point) · '
             f'<a href="{rel}/summary.csv">summary.csv</a></p>',
             sweep.format_summary(summary).head(MAX_ROWS).to_html(index=False, border=0)]
    if (directory / "summary.png").exists():
        parts.append(f'<figure><img src="{rel}/summary.png" alt="summary"><figcaption>mean ± sd over seeds'
                     "</figcaption></figure>")
    return "\n".join(parts)


def _study_rank(directory: Path) -> tuple[int, str]:
    """Studies in the order of the README (1–4), anything else after them by name."""
    name = directory.name
    return (STUDY_ORDER.index(name) if name in STUDY_ORDER else len(STUDY_ORDER), name)


def _failed_note(studies: list[Path]) -> str:
    failed = [d.name for d in studies if (s := _read_status(d)) is not None and not s["ok"]]
    return f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""


def build_index(runs: str | Path = "runs") -> Path:
    """Write ``runs/index.html`` from every ``runs/<study>/metrics.json`` (not quick/full) and every
    finished sweep's ``runs/sweeps/<grid>/summary.csv``."""
    runs = Path(runs)
    found = {p.parent for p in runs.glob("*/metrics.json")} | {p.parent for p in runs.glob(f"*/{STATUS_FILE}")}
    studies = sorted(found, key=_study_rank)
    sweeps = sorted(p.parent for p in runs.glob("sweeps/*/summary.csv"))
    sections = [study_section(d) for d in studies] + [sweep_section(d, runs) for d in sweeps]
    body = "\n<hr>\n".join(sections) or "<p>No study has been run yet: <code>make run</code>.</p>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>latentlab run report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin-bottom: 1rem; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
figure {{ display: inline-block; margin: 0.5rem; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.8rem; color: #666; }}
.failed {{ color: #b00020; }} pre.failed {{ background: #fdecee; padding: 0.5rem; white-space: pre-wrap; }}
</style></head><body>
<h1>latentlab — run report</h1>
<p>{len(studies)} studies{_failed_note(studies)}, {len(sweeps)} sweeps. Each study section: its tables, its charts, links to the
executed notebook; each sweep: its summary over seeds.</p>
{body}
</body></html>
"""
    return io.atomic_write(runs / "index.html", lambda p: p.write_text(page))


if __name__ == "__main__":
    print(build_index())
