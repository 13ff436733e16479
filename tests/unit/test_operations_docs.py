"""docs/operations: every link resolves, and the commands it documents exist as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.report.__main__ import main as report_main

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs" / "operations").glob("*.md"))
PAGES = {"deploy", "upgrade", "rollback", "oncall", "backup-restore", "risks", "report"}


def test_every_operations_page_exists_and_is_indexed() -> None:
    index = (ROOT / "docs/operations/index.md").read_text()
    assert {p.stem for p in DOCS} == PAGES | {"index"}
    for page in PAGES:
        assert f"]({page}.md)" in index


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_report_flags_in_the_docs_are_the_tools_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        report_main(["--help"])
    options = set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out))
    documented = set(re.findall(r"--[a-z][a-z-]+", (ROOT / "docs/operations/report.md").read_text()))
    assert documented and documented <= options, documented - options


def test_make_targets_used_for_the_report_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for variable in ("PROMETHEUS", "FROM", "TO", "REPORT_OUT"):
        assert re.search(rf"^{variable} \?=", makefile, re.MULTILINE)
        assert f"$({variable})" in makefile
