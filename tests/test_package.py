"""pyproject.toml: only `captioner` (with the checkout's training/ as captioner.training) is
installed, its console scripts import, its package data covers everything the package reads,
and its dependencies agree with requirements.txt; the installed packages import without
cycles. Nothing is installed, except by the slow test at the end: a wheel built and installed
into a throw-away venv, used from a folder outside the checkout."""
from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import captioner
from captioner.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PROJECT["tool"]["setuptools"]
SCRIPTS = PROJECT["project"]["scripts"]
PACKAGE_DIR = SETUPTOOLS.get("package-dir", {})


def folder_of(package: str) -> Path:
    """The checkout folder that installs as `package` (package-dir maps captioner.training to
    training/)."""
    return ROOT / PACKAGE_DIR.get(package, package.replace(".", "/"))


def checkout_module(module: str) -> str:
    """An installed module's name in the checkout: captioner.training.train -> training.train."""
    for package, folder in PACKAGE_DIR.items():
        if module == package or module.startswith(package + "."):
            return folder.replace("/", ".") + module[len(package):]
    return module


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_is_an_importable_callable(name):
    module, _, attr = SCRIPTS[name].partition(":")
    assert module.rpartition(".")[0] in SETUPTOOLS["packages"], f"{name}: {module} is not installed"
    assert callable(getattr(importlib.import_module(checkout_module(module)), attr))


def test_the_commands_are_all_there():
    assert set(SCRIPTS) == {"captioner", "captioner-train", "captioner-finetune", "captioner-scst",
                            "captioner-evaluate", "captioner-convert", "captioner-concepts"}
    assert build_parser().prog == "captioner"


def test_package_data_covers_every_file_the_package_reads():
    """The shipped models, the example photos and the tagger's word lists (captioner/data/):
    every file under captioner/ that is not Python source."""
    package = ROOT / "captioner"
    shipped = {p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
               and "__pycache__" not in p.parts}
    assert {p.parent.name for p in shipped} >= {"weights", "examples", "data"}
    covered = {p for pattern in SETUPTOOLS["package-data"]["captioner"]
               for p in package.glob(pattern)}
    assert shipped <= covered, sorted(str(p.relative_to(package)) for p in shipped - covered)


def test_only_captioner_goes_into_site_packages():
    """Generic top-level names (training, ui) would collide with a user's own modules: the
    checkout's training/ installs as captioner.training, the app's ui/ not at all."""
    for name in SETUPTOOLS["packages"]:
        assert name == "captioner" or name.startswith("captioner."), name
        assert (folder_of(name) / "__init__.py").is_file(), name
    assert folder_of("captioner.training") == ROOT / "training"
    assert "ui" not in {name.partition(".")[0] for name in SETUPTOOLS["packages"]}


def test_the_library_never_imports_training_or_the_app():
    for path in (ROOT / "captioner").glob("*.py"):
        module = "captioner" if path.stem == "__init__" else f"captioner.{path.stem}"
        found = {name.partition(".")[0] for name in _imports(path, module)}
        assert not found & {"training", "ui", "app"}, path.name


def test_training_imports_its_own_modules_relatively():
    """So one file works as training.X in the checkout and captioner.training.X installed."""
    for path in (ROOT / "training").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert all(n.partition(".")[0] != "training" for n in names), path.name


def test_usage_lines_name_the_command_the_user_ran(monkeypatch):
    from training.commands import prog

    assert prog("train") == "python -m training.train"  # the checkout's name
    monkeypatch.setattr("sys.argv", ["/venv/bin/captioner-train", "--help"])
    assert prog("train") == "captioner-train"
    assert prog("export") == "python -m training.export"  # no console script of that name


def test_every_command_line_parser_refuses_abbreviated_flags():
    """argparse's default takes a prefix of a flag for the flag (captioner-finetune
    --checkpoint X was --checkpoint-every X): every parser is made with allow_abbrev=False."""
    sources = [p for folder in ("captioner", "training", "benchmarks", "scripts")
               for p in (ROOT / folder).rglob("*.py")]
    parsers = 0
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("ArgumentParser", "add_parser"):
                parsers += 1
                keywords = {k.arg: k.value for k in node.keywords}
                assert isinstance(keywords.get("allow_abbrev"), ast.Constant) \
                    and keywords["allow_abbrev"].value is False, f"{path.name}:{node.lineno}"
    assert parsers > 30


@pytest.mark.parametrize("script, argv, abbreviated", [
    ("captioner-finetune", ["--data", "x.json", "--checkpoint", "5"], "--checkpoint"),
    ("captioner-train", ["--data", "x.json", "--hidden", "64"], "--hidden"),
    ("captioner", ["caption", "x.jpg", "--over", "maps"], "--over"),
    ("captioner-evaluate", ["--checkpoint", "soft", "--spl", "val"], "--spl"),
    ("captioner-convert", ["coco", "--val-json", "v.json", "--out", "o.json", "--karpathy",
                           "k.json"], "--karpathy"),
])
def test_an_abbreviated_flag_is_refused_not_taken_for_a_longer_one(script, argv, abbreviated,
                                                                 capsys):
    module, _, attr = SCRIPTS[script].partition(":")
    with pytest.raises(SystemExit) as exit_:
        getattr(importlib.import_module(checkout_module(module)), attr)(argv)
    assert exit_.value.code == 2
    assert f"unrecognized arguments: {abbreviated}" in capsys.readouterr().err


def test_one_version_number():
    assert "version" in PROJECT["project"]["dynamic"]
    assert SETUPTOOLS["dynamic"]["version"] == {"attr": "captioner.__version__"}
    assert captioner.__version__.count(".") == 2


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = requirement.specifier
    return pins


def test_dependencies_agree_with_requirements_txt():
    pins = _pins()
    declared = [*PROJECT["project"]["dependencies"],
                *(r for extra in PROJECT["project"]["optional-dependencies"].values() for r in extra)]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.txt"
        for pin in pins[name]:  # the tested release satisfies the declared range
            if pin.operator == "==":
                assert requirement.specifier.contains(pin.version), (line, str(pin))
    runtime = {canonicalize_name(Requirement(r).name) for r in declared}
    assert set(pins) <= runtime, f"requirements.txt only: {sorted(set(pins) - runtime)}"


def _imports(path: Path, module: str) -> set[str]:
    """The repository modules `module` (at `path`) imports, lazily or not."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_import_cycles_between_modules():
    paths = {}
    for package in SETUPTOOLS["packages"]:
        for path in folder_of(package).glob("*.py"):
            paths[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    imports = {m: _imports(p, m) & set(paths) - {m} for m, p in paths.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                # a package's __init__ gathers its modules: the way back from them is not a cycle
                todo += [m for m in imports[module] if m not in SETUPTOOLS["packages"]]
        return False

    cycles = sorted((a, b) for a in imports for b in imports[a]
                    if b not in SETUPTOOLS["packages"] and reaches(b, a))
    assert cycles == []


# ---------------------------------------------------------------------------------------------
# the built wheel, installed, from a folder outside the checkout
# ---------------------------------------------------------------------------------------------

def _run(command: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _importable(python: Path, cwd: Path, names: tuple[str, ...]) -> list[str]:
    code = ("import importlib.util, sys; "
            f"print(' '.join(n for n in {names!r} if importlib.util.find_spec(n)))")
    result = _run([python, "-c", code], cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.slow
def test_the_installed_wheel_works_from_any_folder(tmp_path):
    """pip install of the wheel into a fresh venv (torch and the other dependencies from the
    system's site-packages: nothing is downloaded), then, from a folder outside the checkout,
    the CLI, the Python API, every console script and evaluate on a tiny dataset; `training`
    and `ui` are not importable there."""
    from fixture_data import make_dataset

    source = tmp_path / "source"  # a copy: building in the checkout leaves build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in {"captioner", *PACKAGE_DIR.values()}:
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--no-index", "--wheel-dir", tmp_path / "dist", source], tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel, = (tmp_path / "dist").glob("captioner-*.whl")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], outside)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    shadowing = _importable(python, outside, ("captioner", "training", "ui"))
    if shadowing:  # e.g. a `pip install -e .` of the checkout in the system's site-packages
        pytest.skip(f"already importable outside the checkout before the wheel: {shadowing}")
    installed = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], outside)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert _importable(python, outside, ("captioner", "training", "ui")) == ["captioner"]

    photo = outside / "chelsea.jpg"
    shutil.copy(ROOT / "captioner" / "examples" / "chelsea.jpg", photo)
    cli = _run([bin_dir / "captioner", "caption", photo.name, "--model", "hard"], outside)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("chelsea.jpg\t") and len(cli.stdout.split()) > 3

    api = _run([python, "-c", "import captioner; from captioner import Captioner; "
                "print(captioner.__file__); "
                "print(Captioner.from_checkpoint().caption('chelsea.jpg')[0].text)"], outside)
    assert api.returncode == 0, api.stderr
    where, text = api.stdout.splitlines()
    assert Path(where).is_relative_to(venv) and text.strip()

    for name in sorted(SCRIPTS):
        helped = _run([bin_dir / name, "--help"], outside)
        assert helped.returncode == 0, (name, helped.stderr)
        assert helped.stdout.startswith(f"usage: {name} "), (name, helped.stdout[:200])

    data = make_dataset(outside / "shapes", n_train=2, n_val=1, n_test=2)
    bad = _run([bin_dir / "captioner-train", "--init", "no-such-model", "--data", data,
                "--out", outside / "runs"], outside)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: no-such-model: no such checkpoint file, nor a shipped model (soft, hard)")
    evaluated = _run([bin_dir / "captioner-evaluate", "--checkpoint", "hard", "--data", data,
                      "--split", "test", "--cache-dir", outside / "cache", "--threads", "1",
                      "--out", outside / "result.json"], outside)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "CIDEr" in evaluated.stdout and (outside / "result.json").is_file()
