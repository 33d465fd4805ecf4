"""``make lab`` (``latentlab lab``) always asks for a token, even under a config that disables it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from latentlab import cli

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


def test_a_config_that_disables_auth_still_gets_a_token(tmp_path):
    config = tmp_path / "jupyter_config"
    config.mkdir()
    (config / "jupyter_server_config.py").write_text(HOSTILE_CONFIG)
    port, token = free_port(), "test-token-1234567890"
    argv = cli.lab_argv(tmp_path, port, token)
    exe = str(Path(sys.executable).parent / "jupyter")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_TOKEN": "",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings")}
    server = subprocess.Popen([exe, *argv[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while status(f"{base}/api/status", token) != 200:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            time.sleep(0.5)
        assert status(f"{base}/api/status") == 403
        assert status(f"{base}/api/contents") == 403
        assert status(f"{base}/api/kernels") == 403
        assert status(f"{base}/api/contents", "wrong-token") == 403
        assert status(f"{base}/api/contents", token) == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
