"""The layout keeps its promises: docs/code-map.md names every module, no two modules share a
name, and imports between packages run one way (config → http → export pipeline, NF-e →
streams → reading together → source)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "source_sp_invoices"
MAP = ROOT / "docs" / "code-map.md"

# What each part of the package may import from the package (besides itself). Anything not
# listed is a dependency running against the flow.
ALLOWED = {
    "http": {"settings", "config"},
    "nfe": set(),
    "changes": {"config", "dates"},
    "export_pipeline": {"settings", "config", "http", "nfe", "state", "dates", "changes"},
    "streams": {
        "settings",
        "config",
        "http",
        "export_pipeline",
        "nfe",
        "state",
        "dates",
        "json_schemas",
        "changes",
    },
    "config": {"settings"},
    "state": {"config", "dates"},
    "dates": {"config"},
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def part_of(module: str) -> str:
    """The package part a dotted module name belongs to: `http`, `streams`, `config`..."""
    return module.removeprefix("source_sp_invoices.").split(".")[0]


def package_imports(path: Path) -> set[str]:
    """The source_sp_invoices modules a file imports (from-imports of names count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "source_sp_invoices"
        ):
            module = node.module or ""
            if module == "source_sp_invoices":  # from source_sp_invoices import settings
                found.update(f"source_sp_invoices.{alias.name}" for alias in node.names)
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("source_sp_invoices"))
    return found


def test_the_map_names_every_module_and_only_modules_that_exist() -> None:
    text = MAP.read_text("utf-8")
    for path in modules():
        if path.name == "__init__.py":
            if path.parent == PACKAGE:
                continue
            assert f"`{path.parent.name}/`" in text, f"the map does not name {path.parent.name}/"
            continue
        assert f"{path.name}" in text, f"the map does not name {path.relative_to(PACKAGE)}"
    named = set(re.findall(r"[a-z_]+(?:/[a-z_]+)*\.py", text))
    existing = (
        {p.name for p in modules()}
        | {str(p.relative_to(PACKAGE)) for p in modules()}
        | {str(p.relative_to(ROOT)) for p in ROOT.glob("*/*.py")}
        | {str(p.relative_to(ROOT)) for p in ROOT.glob("*/*/*.py")}
    )
    assert sorted(named - existing) == []


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.stem for p in modules() if p.name != "__init__.py")
    names.update(
        p.parent.name for p in modules() if p.name == "__init__.py" and p.parent != PACKAGE
    )
    assert [name for name, count in names.items() if count > 1] == []


def test_imports_between_packages_run_one_way() -> None:
    wrong = []
    for path in modules():
        own = part_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own not in ALLOWED:
            continue  # source, run, read_together...: the top of the flow may use anything
        for module in package_imports(path):
            other = part_of(module)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_every_package_says_its_job() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE:
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text("utf-8")))
        assert docstring and len(docstring) > 40, f"{init.relative_to(ROOT)} has no docstring"
