"""Project-wide pytest setup: markers that need machine facilities skip with a reason when absent."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chromium = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    for item in items:
        if "browser" in item.keywords and not chromium:
            item.add_marker(
                pytest.mark.skip(reason="Debian chromium is not installed (make setup installs it)")
            )
