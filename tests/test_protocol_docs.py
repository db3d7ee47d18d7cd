"""Every YAML example of docs/protocols/*.md is run by a test, as the page writes it.

Each example is named (``<!-- docs-example: NAME -->`` before its fence) and a test of its
mapper takes it with :func:`edgedev.testing.docs_example` and runs it: against ``edgedev
simulate`` and a plain pymodbus or asyncua server, a broker, the simulated BLE peripheral or
gpiozero's mock pins. A new example with no name, or one no test takes, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "protocols").glob("*.md"))
TESTS = sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "mappers").glob("*/tests/*.py")])
MARKER = re.compile(r"<!-- docs-example: ([\w-]+) -->")


def examples(page: Path) -> list[tuple[int, str | None]]:
    """The line of each YAML fence of ``page`` and the name marked before it (or ``None``)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines, start=1):
        if line.strip() == "```yaml":
            marked = MARKER.fullmatch(lines[number - 2].strip()) if number > 1 else None
            found.append((number, marked[1] if marked else None))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_yaml_example_of_the_page_is_taken_by_a_test(page: Path) -> None:
    sources = {path: path.read_text(encoding="utf-8") for path in TESTS}
    found = examples(page)
    assert found, f"{page.name} has no YAML example"
    for line, name in found:
        assert name is not None, f"{page.name}:{line}: a YAML example with no docs-example name"
        call = re.compile(rf'docs_example\(\s*PAGE,\s*"{re.escape(name)}"\s*\)')
        takers = [p for p, text in sources.items() if page.name in text and call.search(text)]
        assert takers, f"{page.name}:{line}: no test takes the example {name!r}"
    names = [name for _, name in found]
    assert len(set(names)) == len(names), f"{page.name}: an example name is used twice"
