"""proxy-status turns /debug/syncz into istioctl's table."""

from __future__ import annotations

from istiolite.proxystatus import errors, format_table, sync_state

SYNCZ = {
    "generation": 7,
    "proxies": [
        {
            "proxy": "sidecar~10.0.0.6~reviews-v1-x.default~default.svc.cluster.local",
            "types": {
                "CDS": {"sent": "a", "acked": "a", "nacked": "", "error": ""},
                "EDS": {"sent": "b", "acked": "b", "nacked": "", "error": ""},
                "LDS": {"sent": "c", "acked": "c", "nacked": "", "error": ""},
                "RDS": {"sent": "d2", "acked": "d1", "nacked": "d2", "error": "bad regex"},
            },
        },
        {
            "proxy": "sidecar~10.0.0.5~productpage-v1-y.default~default.svc.cluster.local",
            "types": {"CDS": {"sent": "a", "acked": "", "nacked": "", "error": ""}},
        },
    ],
}


def test_states_follow_sent_acked_and_nacked_versions() -> None:
    assert sync_state(None) == "NOT SENT"
    assert sync_state({"sent": "a", "acked": "a"}) == "SYNCED"
    assert sync_state({"sent": "b", "acked": "a"}) == "STALE"
    assert sync_state({"sent": "b", "acked": "a", "nacked": "b"}) == "NACKED"
    assert sync_state({"sent": "c", "acked": "a", "nacked": "b"}) == "STALE"


def test_table_has_one_row_per_proxy_sorted_by_name() -> None:
    lines = format_table(SYNCZ, discovery="localhost:8080").splitlines()
    assert lines[0].split() == ["NAME", "CDS", "LDS", "EDS", "RDS", "DISCOVERY", "GENERATION"]
    assert lines[1].split() == [
        "productpage-v1-y.default",
        "STALE",
        "NOT",
        "SENT",
        "NOT",
        "SENT",
        "NOT",
        "SENT",
        "localhost:8080",
        "7",
    ]
    assert lines[2].split() == [
        "reviews-v1-x.default",
        "SYNCED",
        "SYNCED",
        "SYNCED",
        "NACKED",
        "localhost:8080",
        "7",
    ]


def test_rejections_are_listed_with_envoys_reason() -> None:
    assert errors(SYNCZ) == ["reviews-v1-x.default rejected RDS version d2: bad regex"]


def test_a_held_cds_response_is_listed() -> None:
    held = {"proxies": [{"proxy": "p.default", "types": {"CDS": {"sent": "c2", "held": True}}}]}
    [line] = errors(held)
    assert line.startswith("p.default has not answered CDS version c2")
