"""latentlab defers the RFC 3987 grammar jsonschema imports for altair; checks that use it still work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"})
    return done.stdout.strip()


def test_importing_altair_after_latentlab_does_not_build_the_grammar():
    out = _run("import latentlab, altair, sys; m = sys.modules['rfc3987_syntax']; "
               "print('syntax_helpers' in dir(m), 'rfc3987_syntax.syntax_helpers' in sys.modules)")
    assert out == "False False"


def test_iri_format_checks_give_the_real_modules_answers():
    code = ("import latentlab, jsonschema, sys; c = jsonschema.FormatChecker(); "
            "print(c.conforms('http://example.org/a', 'iri'), c.conforms('not an iri', 'iri'), "
            "c.conforms('a/b', 'iri-reference'), type(sys.modules['rfc3987_syntax'].RFC3987_SYNTAX_TERMS).__name__)")
    deferred = _run(code)
    real = _run(code.replace("import latentlab, jsonschema", "import jsonschema, latentlab"))
    assert deferred == real
    assert deferred.startswith("True False True")
