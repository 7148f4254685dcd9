"""sftlab as a user installs it: a wheel built from the repository, installed into a fresh virtual environment apart
from the source tree (its dependencies from the project's environment), run from an empty directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, TINY_RUN
from sftlab import rundir


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin/`` of a venv holding only the built wheel; a .pth line lends it the project's dependencies."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a clean copy: an in-tree build would leave build/ in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("src", "conf", "data"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(root)], check=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    where = [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    site = subprocess.run(where, check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(root.glob("sftlab-*.whl"))
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", str(wheel)], check=True
    )
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A program of the venv (else of the system) run in ``cwd``, with no trace of the source tree in its path."""
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    program = bin_dir / args[0]
    result = subprocess.run(
        [str(program) if program.exists() else args[0], *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_train_then_ask_from_an_empty_directory(installed, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    where = run(installed, work, "python", "-c", "import sftlab, sftlab.conf, sftlab.bundled as b; print(b.__file__)")
    package = Path(where.stdout.strip()).parents[1]
    assert package.is_relative_to(installed.parent) and not package.is_relative_to(ROOT)

    run(installed, work, "sftlab", "train", *TINY_RUN)
    run_dirs = list((work / "outputs").glob("*/*"))
    assert [path.name for path in work.iterdir()] == ["outputs"] and len(run_dirs) == 1
    run_dir = run_dirs[0]
    record = rundir.read_record(run_dir, rundir.RunRecord)
    assert record.data_files and all(Path(f).is_relative_to(package / "bundled") for f in record.data_files)
    sources = (run_dir / rundir.HYDRA_SETTINGS).read_text()
    assert "path: sftlab.conf\n      schema: pkg\n      provider: main" in sources  # the shipped config tree
    assert (run_dir / rundir.ADAPTER / "adapter_config.json").is_file()

    answer = run(installed, work, "sftlab", "ask", str(run_dir.relative_to(work)), "Why?", "--max-new-tokens", "4")
    assert "response: " in answer.stdout


def test_user_configs_extend_the_shipped_ones(installed, tmp_path):
    (tmp_path / "my_conf" / "experiment").mkdir(parents=True)
    (tmp_path / "my_conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny_random\n\nrun_name: mine\ntrainer:\n  max_steps: 3\n"
    )
    shown = run(installed, tmp_path, "sftlab", "train", "--config-dir", "my_conf", "experiment=mine", "--cfg", "job")
    assert "run_name: mine" in shown.stdout and "max_steps: 3" in shown.stdout
    assert "name: tiny_random" in shown.stdout and "name: reasoning_tags" in shown.stdout  # shipped groups around it
    searchpath = run(installed, tmp_path, "sftlab", "train", "--config-dir", "my_conf", "--info", "searchpath")
    assert "pkg://sftlab.conf" in searchpath.stdout and str(tmp_path / "my_conf") in searchpath.stdout


def test_help_and_shell_completion(installed, tmp_path):
    overview = run(installed, tmp_path, "sftlab", "--help").stdout
    assert all(f"  {name} " in overview for name in ("train", "evaluate", "preview", "report", "ask", "export"))
    train_help = run(installed, tmp_path, "sftlab", "train", "--help").stdout
    assert train_help.startswith("sftlab train: LoRA SFT") and "model: llama3_8b_4bit, smollm2_135m" in train_help
    assert "--direction" in run(installed, tmp_path, "sftlab", "translate", "--help").stdout
    script = run(installed, tmp_path, "sftlab", "-sc", "install=bash").stdout
    assert script.rstrip().endswith("hydra_bash_completion sftlab")
    # bash's completion function, as the installed script defines it, completing a line the user is typing
    line = "sftlab train model=tiny_"
    complete = f'COMP_LINE="{line}" COMP_POINT={len(line)} COMP_CWORD=2 hydra_bash_completion'
    bash = f'{script}\n{complete}; echo "${{COMPREPLY[@]}}"'
    completed = run(installed, tmp_path, "bash", "-c", bash, env={"PATH": f"{installed}:{os.environ['PATH']}"})
    assert completed.stdout.split() == ["model=tiny_random"]
