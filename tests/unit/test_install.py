"""What an installation leaves where the system looks: the completions scripts/install-shell-files places are the
files bash-completion's loader and zsh's $fpath find by themselves, and the Python API imports from a venv that
is not lanco's own (docs/api.md, "Which Python has it")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
"""bash-completion's loader, as Debian's package bash-completion installs it (scripts/test installs the package)."""
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
DEBIAN_PYTHON = "/usr/bin/python3"


def install_shell_files(destdir: Path) -> list[str]:
    """Run scripts/install-shell-files under DESTDIR; the paths it says it installed (DESTDIR left out)."""
    result = subprocess.run([str(ROOT / "scripts" / "install-shell-files")], capture_output=True, text=True,
                            env={**CLEAN_ENV, "DESTDIR": str(destdir)}, check=False, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    installed = result.stdout.split()
    for path in installed:
        assert (destdir / path.lstrip("/")).is_file(), path
    return installed


def loaded_by_bash_completion(loader: Path, env: dict[str, str]) -> str:
    """What ``complete -p lanco`` says once bash-completion's loader has been asked for lanco, as when a user
    first presses TAB after ``lanco`` (``_minimal`` when it found no file of lanco's)."""
    script = f"source {loader}\n_completion_loader lanco\ncomplete -p lanco\n"
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            env={**CLEAN_ENV, **env}, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_bash_completion_loads_the_installed_file(tmp_path: Path) -> None:
    """bash-completion searches $XDG_DATA_DIRS (default /usr/local/share:/usr/share) and the completions/ folder
    beside itself: with all of them moved under DESTDIR, it finds the file there, and lanco's function."""
    if not BASH_COMPLETION.is_file():
        pytest.skip("bash-completion is not installed (scripts/test installs it)")
    destdir = tmp_path / "root"
    installed = install_shell_files(destdir)
    assert any(path.endswith("/bash-completion/completions/lanco") for path in installed), installed
    loader = destdir / BASH_COMPLETION.relative_to("/")
    loader.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BASH_COMPLETION, loader)
    (tmp_path / "home").mkdir()
    moved = {"HOME": str(tmp_path / "home"), "XDG_DATA_DIRS": f"{destdir}/usr/local/share:{destdir}/usr/share"}
    assert loaded_by_bash_completion(loader, moved) == "complete -F _lanco lanco"
    # Without the file, the same loader falls back to its minimal completion: the check above can fail.
    for path in installed:
        (destdir / path.lstrip("/")).unlink()
    assert loaded_by_bash_completion(loader, moved) == "complete -F _minimal lanco"


def test_bash_completion_on_this_machine(tmp_path: Path) -> None:
    """Where scripts/install has run, the real loader, in a clean shell, finds lanco's completion."""
    if not BASH_COMPLETION.is_file():
        pytest.skip("bash-completion is not installed (scripts/test installs it)")
    if not Path("/usr/local/bin/lanco").exists():
        pytest.skip("lanco is not installed here (scripts/install)")
    assert loaded_by_bash_completion(BASH_COMPLETION, {"HOME": str(tmp_path)}) == "complete -F _lanco lanco"


def test_zsh_looks_where_the_completion_is_installed(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (scripts/test installs it)")
    installed = install_shell_files(tmp_path)
    [function] = [path for path in installed if path.endswith("/_lanco")]
    fpath = subprocess.run([zsh, "-f", "-c", "print -l -- $fpath"], capture_output=True, text=True, check=True,
                           env=CLEAN_ENV, timeout=60).stdout.split()
    assert os.path.dirname(function) in fpath, fpath
    # compinit reads the first line of each file in $fpath for the commands it completes.
    assert (tmp_path / function.lstrip("/")).read_text().startswith("#compdef lanco\n")


# -- the Python API from another venv ---------------------------------------------------------------------------

BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "bin", "man", "completion")
"""What setuptools reads to build lanco: copied out first, so that the build leaves nothing in the checkout."""


def checkout_copy(where: Path) -> Path:
    where.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, where / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copyfile(source, where / name)
    return where


def setuptools_builds_here() -> bool:
    """Whether the interpreter running the tests has the setuptools pyproject.toml asks for, so that the wheel is
    built without the network (pip otherwise fetches that setuptools into an isolated build environment)."""
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except metadata.PackageNotFoundError:
        return False


def fresh_venv(where: Path) -> Path:
    """A venv of Debian's interpreter, as a user makes one: nothing of lanco's, no system site-packages."""
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(where)], check=True, env=CLEAN_ENV, timeout=120)
    return where / "bin" / "python"


def pip(python: Path, *args: str) -> None:
    # A clean environment: with the tests' PYTHONPATH, pip would take a lanco built in the work tree (its
    # src/lanco.egg-info) for one installed already, and install nothing.
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                            capture_output=True, text=True, check=False, timeout=600,
                            env={**CLEAN_ENV, "HOME": os.environ.get("HOME", "/root")})
    assert result.returncode == 0, result.stdout + result.stderr


def assert_the_api_imports(python: Path, venv_dir: Path) -> None:
    probe = "import lanco; lanco.Namespace; lanco.LancoError; print(lanco.__file__)"
    result = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, check=False,
                            cwd="/", env=CLEAN_ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(venv_dir), result.stdout
    version = subprocess.run([str(venv_dir / "bin" / "lanco"), "--version"], capture_output=True, text=True,
                             check=False, env=CLEAN_ENV, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("lanco "), version.stderr


@pytest.mark.slow
def test_the_api_from_a_venv_of_ones_own_with_the_built_wheel(tmp_path: Path) -> None:
    """A wheel built once installs anywhere without the network: pip install --no-deps --no-index."""
    if not Path(DEBIAN_PYTHON).is_file():
        pytest.skip(f"no {DEBIAN_PYTHON}")
    source = checkout_copy(tmp_path / "checkout")
    offline = ["--no-build-isolation", "--no-index"] if setuptools_builds_here() else []
    pip(Path(sys.executable), "wheel", "--no-deps", *offline, "-w", str(tmp_path / "dist"), str(source))
    [wheel] = (tmp_path / "dist").glob("lanco-*.whl")
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "--no-deps", "--no-index", str(wheel))
    assert_the_api_imports(python, tmp_path / "venv")


@pytest.mark.slow
def test_the_api_from_a_venv_of_ones_own_with_the_checkout(tmp_path: Path) -> None:
    """pip install of the checkout, as docs/api.md says; pip fetches the setuptools that builds it (the network)."""
    if not Path(DEBIAN_PYTHON).is_file():
        pytest.skip(f"no {DEBIAN_PYTHON}")
    source = checkout_copy(tmp_path / "checkout")
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "--no-deps", str(source))
    assert_the_api_imports(python, tmp_path / "venv")


# -- the README's first commands --------------------------------------------------------------------------------


def setup_commands() -> list[list[str]]:
    """The commands of the README's first code block: what a new user types on a fresh machine."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].split() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_the_readme_setup_commands_need_no_sudo() -> None:
    """A minimal Debian has no sudo: the first commands are typed as root as they stand, and neither they nor the
    scripts they run call sudo; each script asks for root itself (and works under sudo, which makes root)."""
    commands = setup_commands()
    assert [words[0] for words in commands] == ["scripts/quicktour", "scripts/test"], commands
    for words in commands:
        script = ROOT / words[0]
        assert os.access(script, os.X_OK), script
        text = script.read_text()
        assert '"$(id -u)" = 0' in text, f"{script} does not check for root itself"
        for ran in (script, ROOT / "scripts" / "install", ROOT / "scripts" / "install-shell-files"):
            code = [line.split("#", 1)[0] for line in ran.read_text().splitlines()]
            assert not any("sudo " in line for line in code), f"{ran} calls sudo"
