"""pyproject.toml: its console scripts import, its package data covers the shipped models and
example photos, and its dependencies agree with requirements.txt. Nothing is installed. And
the installed packages import without cycles."""
from __future__ import annotations

import ast
import importlib
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


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_is_an_importable_callable(name):
    module, _, attr = SCRIPTS[name].partition(":")
    assert module.partition(".")[0] in SETUPTOOLS["packages"], f"{name}: {module} is not installed"
    assert callable(getattr(importlib.import_module(module), attr))


def test_the_commands_are_all_there():
    assert set(SCRIPTS) == {"captioner", "captioner-train", "captioner-finetune", "captioner-scst",
                            "captioner-evaluate", "captioner-convert"}
    assert build_parser().prog == "captioner"


def test_package_data_covers_the_shipped_models_and_examples():
    package = ROOT / "captioner"
    shipped = {p for folder in ("weights", "examples") for p in (package / folder).iterdir()
               if p.is_file()}
    assert any(p.suffix == ".pt" for p in shipped) and any(p.suffix == ".jpg" for p in shipped)
    covered = {p for pattern in SETUPTOOLS["package-data"]["captioner"]
               for p in package.glob(pattern)}
    assert shipped <= covered, sorted(str(p.relative_to(package)) for p in shipped - covered)


def test_packages_are_the_repository_packages():
    for name in SETUPTOOLS["packages"]:
        assert (ROOT / name / "__init__.py").is_file()
    assert "ui" in SETUPTOOLS["packages"]  # the app's helpers


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
        for path in (ROOT / package).glob("*.py"):
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
