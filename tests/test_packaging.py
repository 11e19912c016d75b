"""appraise as installed from its wheel, away from the source tree: the wheel carries the rules,
the Alertmanager config, the runbook and the data, and ``appraise up --profile demo`` started
from another directory writes its Prometheus config and rules and runs."""

from __future__ import annotations

import shutil
import signal
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.tools import ROOT, UP_PORTS, appraise_up, listening, run_processes

PORTS = UP_PORTS


_PIP = (sys.executable, "-m", "pip")
#: What a build must not see: a stale build/ directory would put old modules in the wheel.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs", "models"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of this checkout's files (no network: the
    venv's setuptools)."""
    source = tmp_path_factory.mktemp("source") / "appraise"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*_PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("appraise-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (its dependencies are borrowed
    from this one, read-only, rather than downloaded again). Returns its ``bin`` directory."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (purelib,) = [
        Path(p)
        for p in subprocess.run(
            [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    ]
    # A path, not a site directory: this venv's own .pth files (the editable install of the
    # checkout) are not read there, so `import stream` can only find the wheel's.
    (purelib / "borrowed-dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run(
        [*_PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv / "bin"


def test_the_wheel_carries_the_monitoring_files_and_the_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for rules in (ROOT / "prometheus" / "rules").glob("*.yml"):
        assert f"stream/ops/monitoring/rules/{rules.name}" in names
    assert "stream/ops/monitoring/prometheus.yml" in names
    assert "stream/ops/monitoring/alertmanager.yml" in names
    assert "stream/ops/RUNBOOK.md" in names
    assert "stream/model/data/ames.csv.gz" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_the_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import stream; print(stream.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert not where.startswith(str(ROOT)), where


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_up_runs_from_the_installed_wheel_in_another_directory(
    installed: Path, model_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = elsewhere / "run"
    args = ["--profile", "demo", "--no-live", "--run-dir", str(run_dir)]
    command = [str(installed / "appraise")]
    with appraise_up(args, tmp_path, model_dir, PORTS, command=command, cwd=elsewhere) as up:
        config = run_dir / "config"
        assert (config / "prometheus.yml").is_file()
        assert (config / "alertmanager.yml").is_file()
        rules = sorted(p.name for p in (config / "rules").glob("*.yml"))
        assert rules == sorted(p.name for p in (ROOT / "prometheus" / "rules").glob("*.yml"))
        alerts = (config / "rules" / "appraise-alerts.yml").read_text()
        runbook = installed.parent / "lib"
        assert f"runbook_url: file://{runbook}" in alerts  # the installed RUNBOOK.md
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(timeout=90) == 0, up.log.read_text()[-3000:]
    assert run_processes(up.markers) == []
    assert [name for name, port in up.ports.items() if listening(port)] == []
