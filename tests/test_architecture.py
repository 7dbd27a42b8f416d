"""The package's import structure: no import cycle, and no engine imports upward.

Imports are read with ``ast`` from every module of ``bayesglmm``, function-level (lazy)
imports included; imports under ``if TYPE_CHECKING:`` are for type checkers only and are
left out.  A cycle hidden by lazy imports is still a cycle: it means two modules each need
the other, and neither can be understood (or moved) alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayesglmm"

ENGINE_PACKAGE = "bayesglmm.engines"
UPWARD = (
    "bayesglmm.model",
    "bayesglmm.fit",
    "bayesglmm.io",
    "bayesglmm.spec",
    "bayesglmm.cli",
    "bayesglmm.interpret",
    "bayesglmm.calibration",
)
"""What an engine (``bayesglmm/engines/*``) must not import: the layers built on fits."""

LINEAR_ALGEBRA = {
    "bayesglmm.engines.ml.agq",
    "bayesglmm.engines.ml.scalar_laplace",
    "bayesglmm.engines.ml.blocked_cholesky",
    "bayesglmm.engines.ml.pirls",
    "bayesglmm.engines.ml.laplace",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str], type_checking: bool = False) -> set[str]:
    """The bayesglmm modules ``path`` imports at run time (lazy ones included), and with
    ``type_checking`` those it imports for type checkers only (``if TYPE_CHECKING:``) too."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def target(mod: str) -> str | None:
        # the longest bayesglmm module that ``mod`` names (a.b.c -> a.b if c is a name)
        while mod:
            if mod in modules:
                return mod
            mod = mod.rpartition(".")[0]
        return None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test) and not type_checking:
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    t = target(alias.name)
                    if t:
                        out.add(t)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    t = target(f"{base}.{alias.name}") or target(base)
                    if t:
                        out.add(t)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out.discard(name)
    return out


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over every bayesglmm module (with ``type_checking``,
    the imports under ``if TYPE_CHECKING:`` included)."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules, type_checking) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _edges_within(graph: dict[str, set[str]], comp: list[str]) -> str:
    return "; ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp)


def test_the_parser_sees_lazy_imports_and_skips_type_checking_ones(tmp_path):
    graph = import_graph()
    # model.build imports pymc_model inside a function; results types nothing upward
    assert "bayesglmm.engines.bayes.pymc_model" in graph["bayesglmm.model"]
    assert "bayesglmm.model" not in graph["bayesglmm.fit.results"]
    # the cycle finder finds a two-module and a three-module cycle
    toy = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(toy)) == [["a", "b"], ["c", "d", "e"]]


def test_no_import_cycle_outside_the_linear_algebra():
    graph = import_graph()
    found = [c for c in cycles(graph) if not set(c) <= LINEAR_ALGEBRA]
    assert not found, "import cycles: " + " | ".join(_edges_within(graph, c) for c in found)


def test_no_import_cycle_in_the_linear_algebra():
    """The scalar-term formulas live in engines/ml/quadrature.py, imported by both the NumPy
    (agq) and the fused (scalar_laplace) paths: no cycle among the ML modules."""
    graph = import_graph()
    found = [c for c in cycles(graph) if set(c) & LINEAR_ALGEBRA]
    assert not found, "import cycles: " + " | ".join(_edges_within(graph, c) for c in found)


def test_no_engine_imports_upward():
    graph = import_graph()
    bad = [
        f"{mod} -> {dep}"
        for mod, deps in graph.items()
        if mod.startswith(ENGINE_PACKAGE)
        for dep in sorted(deps)
        if any(dep == up or dep.startswith(up + ".") for up in UPWARD)
    ]
    assert not bad, "engines importing upward: " + "; ".join(bad)


POSTERIOR_NAME_LITERALS = (
    r'f"(sd|r|z|cor|chol_cov)_\{',  # sd_<label>, r_<label>, ...
    r'"(Intercept|Intercept_centered|beta_scaled|sigma_log__)"',
    r'__(term|term_b|level)"',
    r"cholesky-cov-packed__",
)
NOT_POSTERIOR_NAMES = {"bayesglmm/design/naming.py": ('if name == "Intercept":',)}
"""Lines that match but are not posterior names (formulaic's intercept column)."""


def test_posterior_names_are_written_in_one_module():
    """The posterior's variable names come from bayesglmm.posterior_names (the PyMC model,
    the kernel sampler, draws.py and the readers), not from string literals."""
    import re

    pattern = re.compile("|".join(POSTERIOR_NAME_LITERALS))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "posterior_names.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            rel = path.relative_to(PACKAGE.parent).as_posix()
            if line.strip() in NOT_POSTERIOR_NAMES.get(rel, ()):
                continue
            if pattern.search(code) and "``" not in code:
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, "posterior names written out:\n" + "\n".join(found)


#: The pipeline, bottom to top (docs/architecture.md): a module imports only from its own
#: layer or below.  A prefix names a module or a package (the longest prefix wins).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bayesglmm.errors", "bayesglmm.quiet", "bayesglmm.intervals", "bayesglmm.posterior_names"),
    ("bayesglmm.formula",),
    ("bayesglmm.families",),
    ("bayesglmm.design",),
    ("bayesglmm.priors",),
    ("bayesglmm.validate",),
    ("bayesglmm.engines",),
    ("bayesglmm.fit_protocol",),
    ("bayesglmm.fit",),
    ("bayesglmm.interpret",),
    (
        "bayesglmm.model",
        "bayesglmm.io",
        "bayesglmm.spec",
        "bayesglmm.cli",
        "bayesglmm.calibration",
        "bayesglmm.datasets",
        "bayesglmm.__main__",
        "bayesglmm",
    ),
)

#: The only imports allowed to go up: ``GLMMFit``'s convenience methods (``fit.icc()``,
#: ``fit.predict()``, ``fit.plot_ppc()`` in ``fit/interpretation.py``, ``fit.save()`` in
#: ``fit/results.py``) import the interpretation and io modules inside the method, so a
#: user has them on the fit; those modules take the fit as an argument and import its type
#: only for type checkers (no cycle at run time).
DELEGATES = {
    ("bayesglmm.fit.interpretation", "bayesglmm.interpret"),
    ("bayesglmm.fit.results", "bayesglmm.io"),
}


def _layer(module: str) -> int:
    best = (-1, -1)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best[1]:
                best = (i, len(p))
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return best[0]


def test_layers_import_only_downward():
    graph = import_graph()
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if _layer(dep) <= _layer(mod):
                continue
            if any(mod == a and (dep == b or dep.startswith(b + ".")) for a, b in DELEGATES):
                continue
            bad.append(f"{mod} -> {dep}")
    assert not bad, "imports going up the pipeline: " + "; ".join(bad)


def _strict_graph() -> dict[str, set[str]]:
    """The import graph with the imports for type checkers included, but for those of the
    package root: ``bayesglmm/__init__.py`` names every public object under ``if
    TYPE_CHECKING:`` (its lazy attributes), the top of the house by definition."""
    graph = import_graph(type_checking=True)
    graph["bayesglmm"] = import_graph()["bayesglmm"]
    return graph


def test_type_checking_imports_make_no_cycle_either():
    """An import made for annotations only still ties two modules: ``interpret/`` and the
    fit's own work modules annotate with ``bayesglmm.fit_protocol.FitLike``, the fit and the
    saved-fit reader with ``ModelLike``, so no module names ``GLMMFit`` or ``GLMM`` above it
    (``farm-studio look`` draws no circle)."""
    graph = _strict_graph()
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(_edges_within(graph, c) for c in found)


def test_type_checking_imports_go_only_downward_too():
    graph = _strict_graph()
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if _layer(dep) <= _layer(mod):
                continue
            if any(mod == a and (dep == b or dep.startswith(b + ".")) for a, b in DELEGATES):
                continue
            bad.append(f"{mod} -> {dep}")
    assert not bad, "imports (for type checkers too) going up the pipeline: " + "; ".join(bad)


def test_the_strict_checks_see_type_checking_imports():
    """The strict graph reads ``if TYPE_CHECKING:`` blocks (a test that cannot fail is none)."""
    icc = "bayesglmm.interpret.icc"  # annotates with FitLike for type checkers only
    assert "bayesglmm.fit_protocol" not in import_graph()[icc]
    assert "bayesglmm.fit_protocol" in _strict_graph()[icc]
    # interpret annotating with GLMMFit would be a cycle with fit.interpretation's delegates
    graph = _strict_graph()
    graph[icc] = graph[icc] | {"bayesglmm.fit.results"}
    assert any(icc in c for c in cycles(graph))
