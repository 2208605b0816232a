"""The package's layers only point down; read from the source with ``ast``, nothing imported.

Layers, top to bottom (ARCHITECTURE.md, "Layers"); a module may import antlers modules of its
own layer or of a lower one, never of a higher one:

    1 entry points     antlers.cli, antlers.__main__, antlers.tour, antlers.serve
    2 run              antlers.run, antlers.export
    3 tasks            antlers.tasks (the registry, shared code, one subpackage per task)
    4 explain          antlers.explain
    5 engine           antlers.engine, antlers.anatomy
    6 building blocks  antlers.data, antlers.nn, antlers.viz, antlers.config
    7 io               antlers.io
    8 conv             antlers.conv (NumPy only)

Besides: no task package imports another (``antlers.tasks`` itself and its modules outside
the task packages, e.g. ``antlers.tasks.base``, are shared by all); ``antlers.conv`` imports
neither torch nor anything of antlers outside ``conv``. ``antlers/__init__.py`` is the public
facade (lazy names): it may point anywhere, and nothing inside the package imports it.

Every import counts: at the top, inside functions, under ``if TYPE_CHECKING:``, relative ones,
and ``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
FACADE = "antlers"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points", ("antlers.cli", "antlers.__main__", "antlers.tour", "antlers.serve")),
    ("run", ("antlers.run", "antlers.export")),
    ("tasks", ("antlers.tasks",)),
    ("explain", ("antlers.explain",)),
    ("engine", ("antlers.engine", "antlers.anatomy")),
    ("building blocks", ("antlers.data", "antlers.nn", "antlers.viz", "antlers.config")),
    ("io", ("antlers.io",)),
    ("conv", ("antlers.conv",)),
)
TASK_PACKAGES = tuple(
    sorted(p.name for p in (SRC / "antlers" / "tasks").iterdir() if (p / "__init__.py").is_file())
)


@dataclass(frozen=True)
class Import:
    """One imported module: where the import statement is, and who imports whom."""

    file: str  # relative to the repository root
    line: int
    importer: str
    imported: str


def module_name(path: Path) -> str:
    """src/antlers/tasks/classify/report.py -> antlers.tasks.classify.report."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / "antlers").rglob("*.py"))}


def _from_base(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a ``from X import ...`` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imported_names(node: ast.AST, importer: str, is_package: bool, known: set[str]) -> list[str]:
    """Modules one syntax node imports (empty for nodes that import nothing)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _from_base(node, importer, is_package)
        # ``from antlers import run`` imports the module antlers.run, not the facade
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    if isinstance(node, ast.Call) and _called(node.func) == "import_module" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return [first.value]
    return []


def _called(func: ast.expr) -> str:
    """The name a call calls: ``import_module`` for ``importlib.import_module(...)`` too."""
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def imports_in(
    source: str, file: str, importer: str, is_package: bool, known: set[str]
) -> list[Import]:
    """Every module ``source`` imports, wherever the import statement is."""
    return [
        Import(file, node.lineno, importer, name)
        for node in ast.walk(ast.parse(source, filename=file))
        for name in _imported_names(node, importer, is_package, known)
    ]


@functools.cache
def all_imports() -> tuple[Import, ...]:
    modules = _modules()
    found: list[Import] = []
    for module, path in modules.items():
        file = str(path.relative_to(ROOT))
        is_package = path.name == "__init__.py"
        found += imports_in(path.read_text(), file, module, is_package, set(modules))
    return tuple(found)


def antlers_imports() -> list[Import]:
    """Imports of antlers modules by antlers modules other than the facade."""
    return [
        i
        for i in all_imports()
        if i.importer != FACADE and (i.imported == FACADE or i.imported.startswith("antlers."))
    ]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int | None:
    """1 (top) ... len(LAYERS) (bottom); 0 for the facade; None for a module of no layer."""
    if module == FACADE:
        return 0
    for number, (_, packages) in enumerate(LAYERS, start=1):
        if any(_within(module, package) for package in packages):
            return number
    return None


def layer_text(module: str) -> str:
    number = layer_of(module)
    if not _within(module, FACADE):
        return "outside antlers"
    if number == 0:
        return "the facade antlers/__init__.py"
    return f"layer {number} ({LAYERS[number - 1][0]})" if number else "no layer"


def task_of(module: str) -> str | None:
    """The task package a module belongs to; None for shared task code and everything else."""
    parts = module.split(".")
    in_task = len(parts) > 2 and parts[1] == "tasks" and parts[2] in TASK_PACKAGES
    return parts[2] if in_task else None


def describe(found: Import, why: str) -> str:
    return (
        f"{found.file}:{found.line}: {found.importer} imports {found.imported}, {why}: "
        f"{found.importer} is in {layer_text(found.importer)}, {found.imported} in "
        f"{layer_text(found.imported)}"
    )


def upward_imports(imports: list[Import]) -> list[str]:
    """Rule 1: an import of a higher layer (a smaller number), or of a module of no layer."""
    bad = []
    for found in imports:
        own, other = layer_of(found.importer), layer_of(found.imported)
        if own is None or other is None or other < own:
            bad.append(describe(found, "a higher layer (or no layer)"))
    return bad


def cross_task_imports(imports: list[Import]) -> list[str]:
    """Rule 2: a task package importing another task package."""
    return [
        describe(i, f"another task ({task_of(i.importer)} -> {task_of(i.imported)})")
        for i in imports
        if task_of(i.importer) and task_of(i.imported) not in (None, task_of(i.importer))
    ]


def _lines(found: list[str]) -> str:
    return "\n".join(found)


def test_every_module_is_in_a_layer() -> None:
    modules = [m for m in _modules() if m != FACADE]
    assert len(modules) > 50  # the walk found the package
    assert _lines(f"{m}: in no layer, name it in LAYERS" for m in modules if not layer_of(m)) == ""


def test_the_parser_sees_imports_at_every_depth() -> None:
    pairs = {(i.importer, i.imported) for i in antlers_imports()}
    assert ("antlers.run", "antlers.engine.fit") in pairs  # inside a function
    assert ("antlers.run", "antlers.tasks") in pairs  # at the top
    assert ("antlers.tour.explain", "antlers.tour.page") in pairs


def test_imports_only_point_down() -> None:
    assert _lines(upward_imports(antlers_imports())) == ""


def test_no_task_imports_another_task() -> None:
    assert TASK_PACKAGES == ("classify", "detect", "generate", "segment")
    assert _lines(cross_task_imports(antlers_imports())) == ""


def test_conv_imports_no_torch_and_nothing_of_antlers_outside_conv() -> None:
    conv = [i for i in all_imports() if _within(i.importer, "antlers.conv")]
    assert conv  # conv's modules import NumPy and each other
    bad = [
        describe(i, "but conv is NumPy only")
        for i in conv
        if i.imported.split(".")[0] in ("torch", "torchvision")
        or (i.imported.split(".")[0] == FACADE and not _within(i.imported, "antlers.conv"))
    ]
    assert _lines(bad) == ""


def test_engine_imports_no_task() -> None:
    bad = [
        describe(i, "but the engine knows tasks only through the contract it is handed")
        for i in antlers_imports()
        if _within(i.importer, "antlers.engine") and _within(i.imported, "antlers.tasks")
    ]
    assert _lines(bad) == ""


def test_nothing_below_run_imports_run_cli_or_tour() -> None:
    above = ("antlers.run", "antlers.cli", "antlers.__main__", "antlers.tour", "antlers.serve")
    bad = [
        describe(i, "which sits above it")
        for i in antlers_imports()
        if layer_of(i.importer) not in (1, 2) and any(_within(i.imported, p) for p in above)
    ]
    assert _lines(bad) == ""


def test_the_checks_report_a_cross_task_import_with_file_line_and_layers() -> None:
    source = "def f():\n    from ..segment import models\n    from antlers.run import Run\n"
    file = "src/antlers/tasks/classify/report.py"
    known = set(_modules())
    found = imports_in(source, file, "antlers.tasks.classify.report", False, known)
    assert [i.imported for i in found] == ["antlers.tasks.segment.models", "antlers.run"]
    (cross,) = cross_task_imports(found)
    assert cross.startswith(f"{file}:2: antlers.tasks.classify.report imports ")
    assert "antlers.tasks.segment.models, another task (classify -> segment)" in cross
    assert cross.endswith("is in layer 3 (tasks), antlers.tasks.segment.models in layer 3 (tasks)")
    (up,) = upward_imports(found)
    assert up.startswith(f"{file}:3: ")
    assert up.endswith("in layer 3 (tasks), antlers.run in layer 2 (run)")
