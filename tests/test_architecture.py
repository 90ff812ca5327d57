"""The import rules of ../shared/ARCHITECTURE.md, checked on the source: `ml` imports no app; `shop`
imports no other app; the other apps reach another app only through its `services` facade or its
`signals` (and `ml`'s Django side); and no app (nor an AISLE_* setting) names another app's module by a
dotted-path string, which import_string or a "backend" setting would load behind the import graph's back
(the payment gateway, shop's own provider seam, is the one exception)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("shop", "behavior", "search", "recommend", "sentiment", "support", "merchandising")
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


# Which apps an app may read (through their facades), from ../shared/ARCHITECTURE.md.
READS = {"merchandising": {"shop", "sentiment"}, "search": {"shop", "behavior"}}


@pytest.mark.parametrize("package", sorted(READS))
def test_an_app_reads_only_the_apps_it_is_allowed_to(package):
    read = {name.split(".")[0] for path in sources(package) for name in imported_modules(path)}
    assert read & set(APPS) - {package} <= READS[package]


def test_product_copy_reaches_no_app_through_a_settings_string():
    from django.conf import settings

    assert not hasattr(settings, "AISLE_COPY_FACT_SOURCES")
    assert not any("import_string" in name for path in sources("merchandising") for name in imported_modules(path))


def module_named(text: str) -> str | None:
    """The first-party app module a dotted string names ("shop.services.keyword_search" -> "shop.services"), or
    None: model labels ("shop.Product") and ordinary text are not modules."""
    parts = text.split(".")
    if len(parts) < 2 or parts[0] not in APPS or not all(part.isidentifier() for part in parts):
        return None
    path = ROOT / parts[0]
    for depth, part in enumerate(parts[1:], start=2):
        if (path / f"{part}.py").is_file():
            return ".".join(parts[:depth])
        if not (path / part / "__init__.py").is_file():
            return None
        path = path / part
    return ".".join(parts)


def dotted_path_violations(package: str) -> list[str]:
    found = []
    for path in sources(package):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                module = module_named(node.value.strip())
                # Celery task names ("sentiment.tasks.train_model") are names in the workers' registry, given by
                # the tasks' own decorators; naming one loads nothing.
                if module and module.split(".")[0] != package and module.split(".")[1:] != ["tasks"]:
                    found.append(f"{path.relative_to(ROOT)} names {node.value.strip()}")
    return found


# The one setting that may name a class by dotted path: shop's payment provider (its own seam, in its own app).
SETTINGS_SEAMS = {"AISLE_PAYMENT_GATEWAY"}


def settings_violations() -> list[str]:
    found = []
    for node in ast.walk(ast.parse((ROOT / "config" / "settings.py").read_text())):
        if not isinstance(node, ast.Assign):
            continue
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if not any(name.startswith("AISLE_") and name not in SETTINGS_SEAMS for name in names):
            continue
        for value in ast.walk(node.value):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found += [f"{names[0]} names {piece.strip()}" for piece in value.value.split(",")
                          if module_named(piece.strip())]
    return found


@pytest.mark.parametrize("package", ["ml", *APPS])
def test_no_app_loads_another_apps_module_by_a_dotted_path_string(package):
    assert dotted_path_violations(package) == []


def test_no_setting_names_an_apps_module_except_the_payment_seam():
    assert settings_violations() == []


def test_the_checker_catches_a_dotted_path_hop(tmp_path, monkeypatch):
    for app in ("shop", "support"):
        (tmp_path / app).mkdir()
        (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / "shop" / "services.py").write_text("")
    (tmp_path / "support" / "bad.py").write_text(
        "from django.utils.module_loading import import_string\n"
        "search = import_string('shop.services.keyword_search')\n"
        "label = 'shop.Product'\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.py").write_text(
        "AISLE_SEARCH_BACKEND = 'shop.services.keyword_search'\n"
        "AISLE_PAYMENT_GATEWAY = 'shop.services.Gateway'\n"
        "INSTALLED_APPS = ['shop.services']\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert dotted_path_violations("support") == ["support/bad.py names shop.services.keyword_search"]
    assert dotted_path_violations("shop") == []
    assert settings_violations() == ["AISLE_SEARCH_BACKEND names shop.services.keyword_search"]
