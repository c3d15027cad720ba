"""What one Envoy spends applying a route config, by the shape of that config.

The discovery bench's proxies share two cores with pilot-discovery, so the Envoys' own work on
each change is part of every convergence figure there. This bench isolates it: one Envoy reads
route config "8080" from a watched file (no xDS server, no other process busy), and each
update flips the weights of one virtual host. Printed per variant: Envoy's CPU per update
(user + system, minus its idle rate) and the config's size.

The config is what pilot-discovery sends for `BENCH_SERVICES` services (1,000) of the
discovery bench's mesh: every service has a header route and a weighted 90/10 route, and
Istio's default retry policy on its virtual host. The variants take parts away to show what
each costs Envoy; only the first is what proxies get.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench.bench_discovery import cpu_seconds
from bench.meshgen import proxy_identity, service_yaml
from istiolite.api import parse_yaml
from istiolite.discovery.model import Proxy, build_snapshot
from istiolite.discovery.xds.cache import ROUTE, Generation
from istiolite.testing.mesh import envoy_binary, workdir
from istiolite.testing.wait import eventually

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
UPDATES = int(os.environ.get("BENCH_UPDATES", "20"))
ADMIN, LISTENER = 19_901, 19_902

Variant = Callable[[route_pb2.RouteConfiguration], None]


def _no_retry_policy(config: route_pb2.RouteConfiguration) -> None:
    for host in config.virtual_hosts:
        host.ClearField("retry_policy")


def _no_weighted_clusters(config: route_pb2.RouteConfiguration) -> None:
    for host in config.virtual_hosts:
        for route in host.routes:
            if route.route.HasField("weighted_clusters"):
                first = route.route.weighted_clusters.clusters[0].name
                route.route.ClearField("weighted_clusters")
                route.route.cluster = first


def _no_port_domains(config: route_pb2.RouteConfiguration) -> None:
    for host in config.virtual_hosts:
        kept = [d for d in host.domains if ":" not in d]
        del host.domains[:]
        host.domains.extend(kept)


def _half_the_hosts(config: route_pb2.RouteConfiguration) -> None:
    kept = list(config.virtual_hosts)[::2]
    del config.virtual_hosts[:]
    config.virtual_hosts.extend(kept)


VARIANTS: dict[str, list[Variant]] = {
    "as sent to proxies": [],
    "without the retry policy": [_no_retry_policy],
    "without weighted clusters": [_no_weighted_clusters],
    "without host:port domains": [_no_port_domains],
    "with half the hosts": [_half_the_hosts],
    "without retry policy and weighted clusters": [_no_retry_policy, _no_weighted_clusters],
}

HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
BOOTSTRAP = """
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
node: {{id: bench, cluster: bench}}
static_resources:
  listeners:
  - name: outbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listener}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: outbound
          rds:
            route_config_name: "8080"
            config_source:
              path_config_source: {{path: {path}, watched_directory: {{path: {directory}}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def route_config() -> route_pb2.RouteConfiguration:
    text = "---\n".join(service_yaml(i) for i in range(SERVICES))
    snapshot = build_snapshot([p.resource for p in parse_yaml(text) if p.resource])
    node_id, ns, ip, app = proxy_identity(0)
    proxy = Proxy.from_node(node_id, {"NAMESPACE": ns, "INSTANCE_IPS": ip, "LABELS": {"app": app}})
    _, body = Generation(snapshot, 1).respond(ROUTE, proxy, frozenset({"8080"}))
    assert body is not None
    response = discovery_pb2.DiscoveryResponse.FromString(body)
    return route_pb2.RouteConfiguration.FromString(response.resources[0].value)


def updates_applied() -> int:
    """Route config updates Envoy applied; 0 while its admin port is not up yet."""
    url = f"http://127.0.0.1:{ADMIN}/stats?filter=rds\\.8080\\.update_success$"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            _, _, value = reply.read().decode().partition(": ")
    except OSError:
        return 0
    return int(value) if value.strip().isdigit() else 0


def applied_more(than: int) -> bool:
    return updates_applied() > than


def write(directory: Path, config: route_pb2.RouteConfiguration, version: int) -> None:
    """Replace the watched file atomically, as a config map update does."""
    response = discovery_pb2.DiscoveryResponse(version_info=str(version), type_url=ROUTE)
    response.resources.add().Pack(config)
    tmp = directory / "routes.tmp"
    tmp.write_bytes(response.SerializeToString())
    tmp.rename(directory / "routes.pb")


def flip_weights(config: route_pb2.RouteConfiguration, update: int) -> None:
    host = config.virtual_hosts[update % (len(config.virtual_hosts) - 1)]
    for route in host.routes:
        if route.route.HasField("weighted_clusters"):
            clusters = route.route.weighted_clusters.clusters
            clusters[0].weight.value, clusters[1].weight.value = (
                (50, 50) if clusters[0].weight.value == 90 else (90, 10)
            )
            return
    host.routes[-1].name += "'"  # no weights left in this variant: change the route's name


def measure(name: str, config: route_pb2.RouteConfiguration, work: Path) -> None:
    directory = work / name.replace(" ", "-")
    directory.mkdir()
    write(directory, config, 0)
    bootstrap = directory / "bootstrap.yaml"
    bootstrap.write_text(
        BOOTSTRAP.format(
            admin=ADMIN,
            listener=LISTENER,
            hcm=HCM,
            path=directory / "routes.pb",
            directory=directory,
        )
    )
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(bootstrap), "--concurrency", "2", "-l", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: updates_applied() >= 1, what="Envoy loading the route config")
        time.sleep(1)
        idle_from = cpu_seconds(envoy.pid)
        time.sleep(2)
        idle_rate = (cpu_seconds(envoy.pid) - idle_from) / 2
        started, cpu_from, waited = time.monotonic(), cpu_seconds(envoy.pid), 0.0
        for update in range(1, UPDATES + 1):
            applied = updates_applied()
            flip_weights(config, update)
            begun = time.monotonic()
            write(directory, config, update)
            eventually(
                partial(applied_more, applied), what="Envoy applying an update", interval=0.005
            )
            waited += time.monotonic() - begun
        cpu = cpu_seconds(envoy.pid) - cpu_from - idle_rate * (time.monotonic() - started)
        print(
            f"{name:<44} {config.ByteSize() / 1e6:5.2f} MB  "
            f"CPU per update {1000 * cpu / UPDATES:4.0f} ms  "
            f"(wall {1000 * waited / UPDATES:4.0f} ms)"
        )
    finally:
        envoy.kill()
        envoy.wait()


def main() -> None:
    base = route_config()
    print(f"route config 8080 for {SERVICES} services, {UPDATES} updates per variant")
    with workdir() as work:
        for name, changes in VARIANTS.items():
            config = route_pb2.RouteConfiguration()
            config.CopyFrom(base)
            for change in changes:
                change(config)
            measure(name, config, work)
