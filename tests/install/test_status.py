"""Reading a Deployment and its pods the way `kubectl rollout status` and a user debugging would."""

from __future__ import annotations

from typing import Any

import pytest

from istiolite.install.status import established, pod_problems, rollout


def deployment(status: dict[str, Any], *, generation: int = 2, replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, "the deployment controller has not acted on the latest spec yet"),
        ({"observedGeneration": 1}, "the deployment controller has not acted on the latest spec"),
        ({"observedGeneration": 2, "updatedReplicas": 1}, "1 of 2 replicas updated"),
        (
            {"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3},
            "1 old replicas still running",
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1},
            "1 of 2 updated replicas available",
        ),
        (
            {
                "observedGeneration": 2,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "istiod-1" has timed out progressing.',
                    }
                ],
            },
            'rollout stuck: ReplicaSet "istiod-1" has timed out progressing.',
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2},
            None,
        ),
    ],
)
def test_a_rollout_is_complete_only_when_every_replica_is_updated_and_available(
    status: dict[str, Any], expected: str | None
) -> None:
    got = rollout(deployment(status))
    assert got == expected if expected is None else got is not None and got.startswith(expected)


def test_pod_problems_name_the_pod_the_container_and_the_reason() -> None:
    pods: list[dict[str, Any]] = [
        {
            "metadata": {"name": "istiod-a"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "discovery",
                        "ready": False,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "istiolite/pilot:0.1.0"',
                            }
                        },
                    }
                ]
            },
        },
        {
            "metadata": {"name": "istiod-b"},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient memory.",
                    }
                ],
            },
        },
        {
            "metadata": {"name": "istiod-c"},
            "status": {
                "containerStatuses": [
                    {"name": "discovery", "ready": False, "state": {"running": {}}}
                ]
            },
        },
        {"metadata": {"name": "istiod-d"}, "status": {"phase": "Pending"}},
    ]
    assert pod_problems(pods) == [
        "pod istiod-a: container discovery waiting: ImagePullBackOff "
        '(Back-off pulling image "istiolite/pilot:0.1.0")',
        "pod istiod-b: not scheduled: Unschedulable: "
        "0/3 nodes are available: 3 Insufficient memory.",
        "pod istiod-c: container discovery running, not ready (its readiness probe fails)",
        "pod istiod-d: Pending, no container started",
    ]
    assert pod_problems([]) == ["no istiod pods exist"]


def test_a_crd_is_ready_once_established() -> None:
    assert established({}) == "not Established yet"
    crd = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert established(crd) is None
