"""The import graph of pipeline/ and converters/ (built by grimp, import-linter's graph library, with
the imports inside functions): no circles, and the spine of DESIGN.md's layers imports downward only."""
import grimp
import pytest

# DESIGN.md, highest first; a layer may import any layer below it, never one above.
SPINE = ["pipeline.cli", "pipeline.build", "pipeline.executors", "pipeline.rules", "pipeline.plan", "pipeline.runner",
         "pipeline.stages"]
BOTTOM = ["pipeline.resources", "pipeline.worker_process", "pipeline.errors", "pipeline.atomic", "pipeline.hashing"]


@pytest.fixture(scope="module")
def graph():
    # Imports under `if TYPE_CHECKING:` never run: annotations may name a higher layer's types.
    return grimp.build_graph("pipeline", "converters", cache_dir=None, exclude_type_checking_imports=True)


def import_circles(graph) -> list[str]:
    """Each direct import whose target leads back to the importer, as the circle it closes."""
    circles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.append(" -> ".join((module, *back)))
    return circles


def test_no_import_circle(graph):
    circles = import_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_spine_imports_downward_only(graph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=SPINE)
    assert not illegal, [(d.importer, d.imported, [c for c in d.routes]) for d in illegal]


@pytest.mark.parametrize("module", BOTTOM)
def test_bottom_modules_import_no_other_project_module_above_them(graph, module):
    above = {m for m in graph.find_modules_directly_imported_by(module)} - set(BOTTOM)
    assert not above, f"{module} imports {sorted(above)}"


def test_the_check_finds_a_circle():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    assert import_circles(graph) == []
    graph.add_import(importer="a.z", imported="a.x")
    assert import_circles(graph) == ["a.x -> a.y -> a.z -> a.x", "a.y -> a.z -> a.x -> a.y", "a.z -> a.x -> a.y -> a.z"]
