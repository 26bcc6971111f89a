"""The repository documents itself: every runtime module is placed in docs/architecture.md, the
README stays a short entry point, and relative links in the docs resolve."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sdk" / "placekit"


def test_every_module_appears_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    modules = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    assert len(modules) > 30
    assert [m for m in modules if m not in doc] == []


def test_readme_is_short_and_links_to_every_doc():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in readme, doc.name


def test_relative_links_resolve():
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", md.read_text()):
            assert (md.parent / target).exists(), f"{md.name}: broken link {target}"


def test_no_doc_cites_the_design_document_outside_the_repository():
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        assert "DESIGN section" not in path.read_text(), path
