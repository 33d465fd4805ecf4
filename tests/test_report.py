"""runs/index.html: studies in README order, each with its question and this run's answer computed
from its metrics.json, tables formatted for reading, and notebooks rendered as offline HTML."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
from report_fixtures import HEADLINE_NUMBERS, METRICS, write_synthetic_runs, write_wide_and_long_tables

from latentlab import io, report


def test_studies_in_readme_order_with_title_question_and_headline(tmp_path):
    page = report.build_index(write_synthetic_runs(tmp_path)).read_text()
    positions = [page.index(f'<h2 id="{s.directory}">{s.title}') for s in report.STUDIES]
    assert positions == sorted(positions)  # written in reverse folder order, shown in README order
    for study in report.STUDIES:
        section = page[page.index(f'<h2 id="{study.directory}">'):]
        assert html.escape(study.question) in section
        headline = re.search(r'<p class="headline">(.*?)</p>', section).group(1)
        assert HEADLINE_NUMBERS[study.directory] in headline
    assert "4 studies, 1 sweep ·" in page


def test_headlines_are_computed_from_the_numbers():
    h2, sfmn, recon, setvae = (report.headline(s, METRICS[s.directory]) for s in report.STUDIES)
    assert "<strong>leakage</strong>" in h2 and "PCA 0.881" in h2 and "AE 0.849" in h2
    assert "mmd w=0.3" in h2 and "-0.019 against the plain AE" in h2
    assert "energy 0.106" in sfmn and "rank 2 of 3" in sfmn and "not tested" in sfmn and "met: 1 of 3" in sfmn
    assert "Best arm <strong>D</strong> (γ 5)" in recon and "+0.015 (common)" in recon and "D > B > C > E > A" in recon
    assert "1/1" in setvae and "0/1" in setvae and "0.817 → 0.840" in setvae and "not resolved" in setvae
    assert "logistic (summary stats) at 0.880" in setvae


def test_headline_follows_the_run_not_a_script():
    no_leak = {**METRICS["h2"], "mitigation_goal_met": False,
               "leakage_verdict": {**METRICS["h2"]["leakage_verdict"], "overall": "no leakage"}}
    text = report.headline(report.STUDIES[0], no_leak)
    assert "<strong>no leakage</strong>" in text and "No mitigation met the study's goal" in text
    three_seeds = json.loads(json.dumps(METRICS["sfmn"]))
    three_seeds["models"]["sfmn"].update(n_seeds=3, test_aupr=0.2, test_aupr_sd=0.01)
    text = report.headline(report.STUDIES[1], three_seeds)
    assert "SFMN has the best AUPR, <strong>0.200 ± 0.010</strong>, ahead of energy 0.106" in text
    assert "3 seeds" in text and "differences are not tested" not in text


def test_a_run_missing_a_number_falls_back_to_its_first_conclusion():
    own_data = {"conclusions": ["A run **without** a biology column: leakage AUC 0.71."], "leakage_auc": {}}
    text = report.headline(report.STUDIES[0], own_data)
    assert text == "A run <strong>without</strong> a biology column: leakage AUC 0.71."
    assert "no conclusions" in report.headline(report.STUDIES[0], {})


def test_tables_are_rounded_and_empty_spread_columns_left_out_with_a_note():
    frame = pd.DataFrame({"model": ["a", "b"], "auc": [0.912345, 0.5], "auc_sd": [np.nan, np.nan],
                          "seconds": [1234.5, 7.25], "epochs": [3.0, 12.0], "gamma": [2.5, 5.0],
                          "ok": [True, False]})
    shown, notes, numeric = report.readable_table(frame)
    assert list(shown.columns) == ["model", "auc", "seconds", "epochs", "gamma", "ok"]
    assert list(shown["auc"]) == ["0.912", "0.500"] and list(shown["seconds"]) == ["1,234", "7"]
    assert list(shown["epochs"]) == ["3", "12"] and list(shown["ok"]) == ["yes", "no"]
    assert list(shown["gamma"]) == ["2.5", "5.0"]
    assert numeric == ["auc", "seconds", "epochs", "gamma"]
    assert notes == ["1 column without values left out (a spread needs at least two seeds): auc_sd"]


def test_wide_tables_scroll_in_their_box_and_long_ones_are_collapsed_and_cut(tmp_path):
    write_wide_and_long_tables(tmp_path)
    page = report.build_index(tmp_path).read_text()
    wide = page[page.index("wide <span"):]
    assert wide.index('<div class="table-box">') < wide.index("r2site_0.39-0.40_mean")
    start = page.rindex("<details", 0, page.index("long <span"))
    long = page[start:page.index("</details>", start)]
    assert long.startswith('<details class="table"><summary>long <span class="dim">300 rows × 2 columns')
    assert "first 200 of 300 rows shown" in long
    assert long.count("<tr>") == 201  # header + 200 rows
    assert "<h4>history" not in page and "history <span" not in page  # per-epoch logs: a link, not a table
    assert 'Logs: <a href="recon/history.csv">history.csv</a>' in page


def test_notebook_rendered_as_html_that_needs_no_network(tmp_path):
    runs = write_synthetic_runs(tmp_path)
    page = report.build_index(runs).read_text()
    assert 'href="sfmn/02_sfmn.html"' in page and 'href="sfmn/02_sfmn.ipynb"' in page
    rendered = (runs / "sfmn" / "02_sfmn.html").read_text()
    assert "AUC 0.881" in rendered and "data:image/png;base64," in rendered
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:|import\(\"https?:", rendered)
    assert "VBox(children=(FloatSlider" in rendered  # a widget shows its text, not an empty box
    assert "<math" in rendered and "\\|g_c" not in rendered  # TeX drawn as MathML, not left raw


def test_tex_in_markdown_becomes_mathml_but_code_and_prices_stay():
    text = report.math_to_mathml("gate $\\|g_c\\|_1 = 1$, `echo $HOME$x` costs $5 and $10\n$$a^2$$")
    assert text.count("<math") == 2 and 'display="block"' in text
    assert "`echo $HOME$x`" in text and "costs $5 and $10" in text


def test_a_stale_notebook_rendering_is_redone(tmp_path):
    runs = write_synthetic_runs(tmp_path)
    report.build_index(runs)
    rendered = runs / "h2" / "01_h2.html"
    rendered.write_text("old")
    before = rendered.stat().st_mtime
    notebook = runs / "h2" / "01_h2.ipynb"
    import os
    os.utime(notebook, (before + 10, before + 10))
    report.build_index(runs)
    assert "AUC 0.881" in rendered.read_text()


def test_a_failed_study_shows_its_error_not_its_stale_results(tmp_path):
    runs = write_synthetic_runs(tmp_path)
    status = json.loads((runs / "sfmn" / "run_status.json").read_text())
    io.write_json(runs / "sfmn" / "run_status.json",
                  {**status, "ok": False, "error": "ValueError: a chart refused 12760 rows", "failed_cell": 7})
    page = report.build_index(runs).read_text()
    section = page[page.index('<h2 id="sfmn">'):page.index('<h2 id="recon">')]
    assert 'FAILED</span>' in section and "in cell In [7]" in section and "12760 rows" in section
    assert "headline" not in section and "energy" not in section  # last run's numbers are not this run's
    assert "(1 failed: sfmn)" in page


def test_empty_runs_directory_says_what_to_do(tmp_path):
    assert "make run" in report.build_index(tmp_path).read_text()


def test_index_includes_finished_sweeps(tmp_path):
    page = report.build_index(write_synthetic_runs(tmp_path)).read_text()
    assert "sweep: setvae" in page and "1/2 points complete" in page
    assert "0.712 ± 0.031" in page and 'src="sweeps/setvae/summary.png"' in page


def test_an_unreadable_metrics_file_is_named_and_the_other_studies_still_show(tmp_path):
    runs = write_synthetic_runs(tmp_path)
    (runs / "recon" / "metrics.json").write_text('{"conclusions": [')
    page = report.build_index(runs).read_text()
    assert "recon/metrics.json: Expecting value: line 1" in page
    assert page.count('<p class="headline">') == 3
