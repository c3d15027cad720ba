"""The binaries of the kube tier (a real etcd and kube-apiserver, built by `make kube-bins`).

Missing binaries fail the tests rather than skip them, so CI cannot pass by testing nothing;
ISTIOLITE_SKIP_KUBE=1 skips the tier on purpose.
"""

from __future__ import annotations

import os

import pytest

from istiolite.testing.apiserver import Binaries, BinariesMissing


def kube_binaries_or_skip() -> Binaries:
    if os.environ.get("ISTIOLITE_SKIP_KUBE") == "1":
        pytest.skip("ISTIOLITE_SKIP_KUBE=1")
    try:
        return Binaries.find()
    except BinariesMissing as e:
        pytest.fail(f"{e} (or set ISTIOLITE_SKIP_KUBE=1 to skip the kube tier)", pytrace=False)
