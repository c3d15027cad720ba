"""What the demo does to the host's network, read from the generated commands."""

from __future__ import annotations

from pathlib import Path

from istiolite.demo.network import (
    GUARD_CHAIN,
    build_commands,
    guard_commands,
    guard_deletions,
    routes_in_use,
)
from istiolite.demo.topology import BRIDGE, plan, read_sample

SAMPLE = Path(__file__).parents[2] / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"


def _commands() -> list[list[str]]:
    return build_commands(plan(read_sample(SAMPLE.read_text())))


def test_namespaces_get_one_address_and_no_route_out() -> None:
    commands = _commands()
    assert not [c for c in commands if "route" in c], "no default (or any) route is added"
    addresses = [c for c in commands if c[:2] == ["ip", "-n"] and "addr" in c]
    assert len(addresses) == 7  # six workloads and pilot-discovery
    assert all(c[-3].endswith("/16") and c[-1] == "eth0" for c in addresses)


def test_every_link_and_namespace_carries_the_demo_prefix() -> None:
    for command in _commands():
        if command[1:3] == ["link", "add"] or command[1:3] == ["netns", "add"]:
            assert command[3].startswith("il-"), command


def test_no_link_gets_an_ipv6_address() -> None:
    commands = _commands()
    made = [c[3] for c in commands if c[1:3] == ["link", "add"]]
    quiet = [c[-3] for c in commands if c[-2:] == ["addrgenmode", "none"] and "-n" not in c]
    assert sorted(made) == sorted(quiet)


def test_the_guard_keeps_bridge_traffic_on_the_bridge() -> None:
    rules = [" ".join(c) for c in guard_commands()]
    assert f"-i {BRIDGE} -o {BRIDGE} -j ACCEPT" in rules[1]
    assert f"-i {BRIDGE} -j DROP" in rules[2]
    assert f"-o {BRIDGE} -j DROP" in rules[3]
    assert rules[4].startswith(f"iptables -w -I FORWARD 1 -j {GUARD_CHAIN}")


def test_sweep_deletes_tagged_jumps_but_leaves_other_rules() -> None:
    saved = "\n".join(
        [
            "-P FORWARD ACCEPT",
            f"-A FORWARD -m comment --comment istiolite-demo -j {GUARD_CHAIN}",
            "-A FORWARD -i docker0 -j ACCEPT",
            f"-A {GUARD_CHAIN} -i il-br0 -m comment --comment istiolite-demo -j DROP",
        ]
    )
    assert guard_deletions(saved) == [
        [
            "iptables",
            "-w",
            "-D",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "istiolite-demo",
            "-j",
            GUARD_CHAIN,
        ]
    ]


def test_a_subnet_already_routed_here_is_reported() -> None:
    routes = "\n".join(
        [
            "default via 192.0.2.1 dev eth0",
            "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2",
            "198.18.0.0/16 dev il-br0 proto kernel scope link src 198.18.0.1",
            "198.18.4.0/24 dev tun0 scope link",
            "local 198.18.9.9 dev lo table local proto kernel scope host src 198.18.9.9",
        ]
    )
    assert routes_in_use(routes) == [
        "198.18.4.0/24 dev tun0 scope link",
        "local 198.18.9.9 dev lo table local proto kernel scope host src 198.18.9.9",
    ]
