"""``make lab`` (``latentlab lab``) always asks for a token, even under a config that disables it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from latentlab import cli

ROOT = Path(__file__).resolve().parents[1]

HOSTILE_CONFIG = """\
c.IdentityProvider.token = ""
c.ServerApp.token = ""
c.ServerApp.password = ""
c.PasswordIdentityProvider.hashed_password = ""
c.PasswordIdentityProvider.password_required = False
c.ServerApp.allow_unauthenticated_access = True
c.ServerApp.disable_check_xsrf = True
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.allow_remote_access = True
c.ServerApp.allow_origin = "*"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 0  # not listening yet


def test_the_make_target_goes_through_latentlab_lab():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nlab: setup\n", 1)[1].split("\n\n", 1)[0]
    assert recipe.strip() == "$(VENV)/bin/latentlab lab --root $(CURDIR)"
    with pytest.raises(ValueError, match="must not be empty"):
        cli.lab_argv(".", 8888, "")


@contextlib.contextmanager
def lab_server(root: Path, scratch: Path, config: str = "") -> Iterator[tuple[str, str]]:
    """``latentlab lab``'s JupyterLab on ``root`` under a user config dir holding ``config``; yields (url, token)."""
    config_dir = scratch / "jupyter_config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.py").write_text(config)
    port, token = free_port(), "test-token-1234567890"
    argv = cli.lab_argv(root, port, token)
    exe = str(Path(sys.executable).parent / "jupyter")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_TOKEN": "",
           "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings")}
    server = subprocess.Popen([exe, *argv[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while status(f"{base}/api/status", token) != 200:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_config_that_disables_auth_still_gets_a_token(tmp_path):
    with lab_server(tmp_path, tmp_path, HOSTILE_CONFIG) as (base, token):
        assert status(f"{base}/api/status") == 403
        assert status(f"{base}/api/contents") == 403
        assert status(f"{base}/api/kernels") == 403
        assert status(f"{base}/api/contents", "wrong-token") == 403
        assert status(f"{base}/api/contents", token) == 200


def api(base: str, token: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}/api/contents/{path}", method="PUT" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_lab_opens_the_py_twin_as_the_notebook_and_saving_keeps_the_pair(tmp_path):
    """The repository's jupytext.toml pairs notebooks/: the .py opens as a notebook with the .ipynb's
    outputs, and saving in JupyterLab writes both files — even under a config that disables jupytext."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "jupytext.toml", root)
    study = "03_recon"
    for suffix in (".ipynb", ".py"):
        shutil.copy(ROOT / "notebooks" / f"{study}{suffix}", root / "notebooks")
    hostile = 'c.ServerApp.jpserver_extensions = {"jupytext": False}\n'
    with lab_server(root, tmp_path, hostile) as (base, token):
        model = api(base, token, f"notebooks/{study}.py")
        assert model["type"] == "notebook"
        committed = nbformat.read(root / "notebooks" / f"{study}.ipynb", as_version=4)
        cells = model["content"]["cells"]
        assert [c["source"] for c in cells] == [c.source for c in committed.cells]
        assert sum(len(c.get("outputs", [])) for c in cells) > 0, "outputs come from the paired .ipynb"

        cells[0]["source"] += "\n\nEdited in JupyterLab."
        api(base, token, f"notebooks/{study}.ipynb", {"type": "notebook", "format": "json",
                                                      "content": model["content"]})
    assert "# Edited in JupyterLab." in (root / "notebooks" / f"{study}.py").read_text()
    saved = nbformat.read(root / "notebooks" / f"{study}.ipynb", as_version=4)
    assert saved.cells[0].source.endswith("Edited in JupyterLab.")
