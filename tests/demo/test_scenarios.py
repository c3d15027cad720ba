"""The end-to-end scenarios (e2e/test_scenarios.py) on the netns demo cluster.

They are collected here too so that the default test run (`make test`, CI) proves them on
this machine; `make e2e` runs the same functions against other clusters. Skipped, with the
reason, when not root.
"""

import pytest

from e2e.test_scenarios import (
    test_agent_restarts_a_crashed_or_hung_envoy,
    test_circuit_breaker_turns_excess_callers_away_with_overflow_503s,
    test_fault_injection_aborts_and_delays_as_configured,
    test_header_routing_sends_jason_to_v2_every_time,
    test_outlier_detection_ejects_the_failing_endpoint,
    test_retries_hide_a_flaky_ratings,
    test_timeout_answers_504_before_a_slow_upstream,
    test_traffic_survives_control_plane_loss_and_new_config_arrives,
    test_weights_split_reviews_80_20,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy]

__all__ = [
    "test_agent_restarts_a_crashed_or_hung_envoy",
    "test_circuit_breaker_turns_excess_callers_away_with_overflow_503s",
    "test_fault_injection_aborts_and_delays_as_configured",
    "test_header_routing_sends_jason_to_v2_every_time",
    "test_outlier_detection_ejects_the_failing_endpoint",
    "test_retries_hide_a_flaky_ratings",
    "test_timeout_answers_504_before_a_slow_upstream",
    "test_traffic_survives_control_plane_loss_and_new_config_arrives",
    "test_weights_split_reviews_80_20",
]
