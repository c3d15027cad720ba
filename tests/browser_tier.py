"""Debian's chromium for the browser tests, or a skip that says how to get it.

ISTIOLITE_REQUIRE_BROWSER=1 (as CI sets it) turns the skip into a failure, so CI cannot pass
by testing no page.
"""

from __future__ import annotations

import os

import pytest

from istiolite.testing.browser import find_chromium


def chromium_or_skip() -> str:
    found = find_chromium()
    if found is None:
        missing = "the browser tests need Debian's chromium (apt-get install chromium)"
        if os.environ.get("ISTIOLITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing}, and ISTIOLITE_REQUIRE_BROWSER=1 says they must run")
        pytest.skip(missing)
    return found
