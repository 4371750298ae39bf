"""Every import in the package runs downward: a module imports only from its own layer or the layers
below it, in the order of the layer table in the README's "Where things are". The table is read from
the README itself, so that the picture an operator reads and the rule this test checks are one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xapp"
GENERATED = PACKAGE / "e2" / "gen"
LAYER_ROW = re.compile(r"^\|\s*(\d+)\s*\|([^|]*)\|")


def readme_layers() -> dict[str, int]:
    """Module prefix -> layer number, from the README's layer table (lowest layer first)."""
    layers = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        row = LAYER_ROW.match(line)
        if row:
            for prefix in re.findall(r"`(xapp[\w.]*)`", row.group(2)):
                layers[prefix] = int(row.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    # The bare package name stands for xapp/__init__.py only, not for everything below it.
    matches = [p for p in layers if module == p or (p != "xapp" and module.startswith(p + "."))]
    return layers[max(matches, key=len)] if matches else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of the package in the file, lazy and TYPE_CHECKING ones included."""
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "xapp":  # `from xapp import crosscheck` imports the subpackage
                found += [(node.lineno, f"xapp.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, m) for line, m in found if m == "xapp" or m.startswith("xapp.")]


def package_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if GENERATED not in p.parents]


def test_readme_layer_table_is_there():
    layers = readme_layers()
    assert {"xapp.vocab", "xapp.engine", "xapp.app", "xapp.harness", "xapp.cli"} <= set(layers), layers


def test_every_module_sits_in_a_layer():
    layers = readme_layers()
    homeless = [module_name(p) for p in package_files() if layer_of(module_name(p), layers) is None]
    assert homeless == [], f"modules in no layer of the README table: {homeless}"


def test_imports_only_run_downward():
    layers = readme_layers()
    upward = []
    for path in package_files():
        importer = module_name(path)
        own = layer_of(importer, layers)
        for line, target in imported_modules(path):
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} {importer} (layer {own}) imports {target} (layer {theirs})")
    assert upward == [], "imports running up the layers:\n" + "\n".join(upward)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The walk must find imports inside functions and relative ones, or the test above proves nothing."""
    probe = PACKAGE / "data" / "cli.py"
    targets = {m for _, m in imported_modules(probe)}
    assert "xapp.crosscheck" in targets  # imported inside a handler
    assert any(m.startswith("xapp.data") for m in targets)  # `from . import generate`
