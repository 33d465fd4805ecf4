"""`make run` runs every study even when one fails, reports the failure, and exits non-zero."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from latentlab import runall


def study_notebook(path, body: str) -> None:
    """A stand-in study: a papermill parameters cell, then ``body`` (which may raise)."""
    params = new_code_cell('preset = "quick"\noutput_dir = "runs/x"')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


WRITES_METRICS = ("import os\nfrom latentlab import io\n"
                  "io.write_json(f'{output_dir}/metrics.json', {'params': {'preset': preset}, 'seconds': 1.0,\n"
                  "              'omp': os.environ.get('OMP_NUM_THREADS'), 'busy': os.environ.get('LATENTLAB_RUNNING_STUDIES')})")


@pytest.fixture()
def four_studies(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for notebook, study in runall.STUDIES:
        body = "raise ValueError('a chart refused 12760 rows')" if study == "sfmn" else WRITES_METRICS
        study_notebook(notebooks / f"{notebook}.ipynb", body)
    return tmp_path


def test_a_failing_study_does_not_stop_the_others(four_studies, monkeypatch):
    for name in runall.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(runall.BUSY_ENV, raising=False)
    runs = four_studies / "runs"
    stale = runs / "sfmn" / "metrics.json"  # an earlier run's results must not pass for this one's
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"params": {"preset": "quick"}, "seconds": 3.0}))
    results = runall.run_all("standard", runs=runs, notebooks=four_studies / "notebooks", jobs=2)
    assert [r.study for r in results] == [s for _, s in runall.STUDIES]
    assert [r.ok for r in results] == [True, False, True, True]
    failed = results[1]
    assert failed.error == "ValueError: a chart refused 12760 rows" and failed.failed_cell == 3  # In [3]: parameters, injected parameters, then the body
    status = json.loads((runs / "sfmn" / runall.STATUS_FILE).read_text())
    assert status["ok"] is False and status["preset"] == "standard"
    assert (runs / "sfmn" / "02_sfmn.ipynb").exists()  # the executed notebook, stopped at its error
    for _, study in runall.STUDIES:
        assert (runs / study / runall.STATUS_FILE).exists()

    page = (runs / "index.html").read_text()
    assert "4 studies (1 failed: sfmn)" in page
    assert '<h2 id="sfmn">Study 2 · SFMN' in page and '— <span class="failed">FAILED</span></h2>' in page
    assert "ValueError: a chart refused 12760 rows" in page and "in cell In [3]" in page
    kernel = json.loads((runs / "h2" / "metrics.json").read_text())  # what a kernel of the job saw
    assert kernel["omp"] == str(max(1, (runall.os.cpu_count() or 1) // 2))
    assert kernel["busy"] == str(runs / runall.BUSY_FILE)
    # and the job leaves this process as it found it: no thread limits, no pointer to a stale busy file
    # (one that outlived its job made a later Study 4 run in the same process spawn workers onto busy cores)
    assert not any(name in runall.os.environ for name in (*runall.THREAD_VARIABLES, runall.BUSY_ENV))
    assert not (runs / runall.BUSY_FILE).exists()
    assert page.index('<h2 id="h2">') < page.index('<h2 id="sfmn">') < page.index(
        '<h2 id="recon">') < page.index('<h2 id="setvae">')  # README order, not folder order


def test_the_job_exits_non_zero_naming_the_failed_study(four_studies, capsys):
    code = runall.main(["--preset", "quick", "--runs", str(four_studies / "runs"),
                        "--notebooks", str(four_studies / "notebooks"), "sfmn", "h2"])
    out = capsys.readouterr()
    assert code == 1
    assert "1 of 2 studies failed: sfmn" in out.err


def test_an_unknown_study_name_is_refused(four_studies):
    with pytest.raises(SystemExit, match="unknown study"):
        runall.run_all("quick", studies=["h3"], runs=four_studies / "runs", notebooks=four_studies / "notebooks")
