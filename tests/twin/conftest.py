"""The twin's figures (coverage, pages per fault, time to page), printed after the run."""

from __future__ import annotations

from typing import Any

import pytest

FIGURES: dict[str, Any] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("twin figures")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name:<48} {value}")
