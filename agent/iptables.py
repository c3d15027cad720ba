"""The traffic-capture rules of a sidecar, generated as an iptables-restore file (pure).

Inside the pod's network namespace:
- every inbound TCP connection, except to excluded ports, is redirected to Envoy's inbound
  listener (15006);
- every outbound TCP connection, except Envoy's own (uid/gid 1337), loopback, excluded
  ports and excluded CIDRs, is redirected to Envoy's outbound listener (15001).

Envoy forwards inbound traffic to the app from source 127.0.0.6; those connections must not
be captured again, or they would loop back into 15006. Likewise, when the app calls its own
service, Envoy's outbound leg reaches the pod's own IP over `lo` and must go through the
inbound listener once, like any other caller.
"""

from __future__ import annotations

from istiolite.agent.settings import CaptureSettings, parse_ports

INBOUND = "ISTIO_INBOUND"
IN_REDIRECT = "ISTIO_IN_REDIRECT"
OUTPUT = "ISTIO_OUTPUT"
REDIRECT = "ISTIO_REDIRECT"
CHAINS = (INBOUND, IN_REDIRECT, OUTPUT, REDIRECT)
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"

# The jumps from the built-in chains; cleanup deletes exactly these.
JUMPS = (("PREROUTING", INBOUND), ("OUTPUT", OUTPUT))


def capture_rules(settings: CaptureSettings) -> str:
    """An iptables-restore input for the nat table (apply with --noflush)."""
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in CHAINS)]
    lines += [f"-A {builtin} -p tcp -j {chain}" for builtin, chain in JUMPS]
    lines += _inbound(settings)
    lines += _outbound(settings)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def cleanup_commands() -> list[list[str]]:
    """iptables invocations that remove the rules; each may fail when already gone."""
    commands = [["-t", "nat", "-D", builtin, "-p", "tcp", "-j", chain] for builtin, chain in JUMPS]
    commands += [["-t", "nat", "-F", chain] for chain in CHAINS]
    commands += [["-t", "nat", "-X", chain] for chain in CHAINS]
    return commands


def _inbound(settings: CaptureSettings) -> list[str]:
    include = settings.include_inbound_ports
    lines = []
    if include == "*":
        excluded = settings.exclude_inbound_ports
        lines += [f"-A {INBOUND} -p tcp --dport {port} -j RETURN" for port in excluded]
        lines.append(f"-A {INBOUND} -p tcp -j {IN_REDIRECT}")
    elif include:
        # Only the listed ports; exclusions still win, as with Istio's annotations.
        ports = [p for p in parse_ports(include) if p not in settings.exclude_inbound_ports]
        lines += [f"-A {INBOUND} -p tcp --dport {port} -j {IN_REDIRECT}" for port in ports]
    lines.append(f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {settings.inbound_port}")
    return lines


def _outbound(settings: CaptureSettings) -> list[str]:
    uid, gid = settings.proxy_uid, settings.proxy_gid
    lines = [
        f"-A {REDIRECT} -p tcp -j REDIRECT --to-ports {settings.outbound_port}",
        # Envoy handing inbound traffic to the app.
        f"-A {OUTPUT} -s {INBOUND_PASSTHROUGH_SOURCE} -o lo -j RETURN",
    ]
    for owner in (f"--uid-owner {uid}", f"--gid-owner {gid}"):
        lines += [
            # Envoy calling the pod's own IP (the app calling its own service): inbound once.
            f"-A {OUTPUT} ! -d 127.0.0.1/32 -o lo -m owner {owner} -j {IN_REDIRECT}",
            # The app talking to itself over loopback is none of Envoy's business.
            f"-A {OUTPUT} -o lo -m owner ! {owner} -j RETURN",
            # Envoy's own upstream connections: capturing them would loop.
            f"-A {OUTPUT} -m owner {owner} -j RETURN",
        ]
    lines.append(f"-A {OUTPUT} -d 127.0.0.1/32 -j RETURN")
    # These are IPv4 rules and IPv6 is not captured, so an IPv6 range needs no exception.
    excluded = [cidr for cidr in settings.exclude_outbound_cidrs if ":" not in cidr]
    lines += [f"-A {OUTPUT} -d {cidr} -j RETURN" for cidr in excluded]
    lines += [
        f"-A {OUTPUT} -p tcp --dport {port} -j RETURN" for port in settings.exclude_outbound_ports
    ]
    lines.append(f"-A {OUTPUT} -j {REDIRECT}")
    return lines
