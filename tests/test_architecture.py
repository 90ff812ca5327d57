"""The import rules of ../shared/ARCHITECTURE.md, checked on the source: `ml` imports no app; `shop`
imports no other app; the other apps reach another app only through its `services` facade or its
`signals` (and `ml`'s Django side)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("shop", "behavior", "recommend", "sentiment", "support")
PUBLIC = {"services", "signals"}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(package: str) -> list[Path]:
    return [path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts]


def violations(package: str) -> list[str]:
    found = []
    for path in sources(package):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if package == "ml" and top in APPS:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
            elif package in APPS and top in APPS and top != package:
                parts = name.split(".")
                if package == "shop" or len(parts) < 2 or parts[1] not in PUBLIC:
                    # `from shop import services` lists both "shop" and "shop.services": judge the latter.
                    if len(parts) == 1:
                        continue
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", ["ml", *APPS])
def test_imports_follow_the_architecture(package):
    assert violations(package) == []


def test_the_checker_catches_a_forbidden_import(tmp_path, monkeypatch):
    fake = tmp_path / "sentiment"
    fake.mkdir()
    (fake / "bad.py").write_text("from shop.models import Review\nfrom shop import services\n")
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "bad.py").write_text("import behavior.services\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations("sentiment") == ["sentiment/bad.py imports shop.models",
                                       "sentiment/bad.py imports shop.models.Review"]
    assert violations("ml") == ["ml/bad.py imports behavior.services"]
