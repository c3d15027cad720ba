#!/usr/bin/env bash
# Make this machine's Docker engine able to run kind nodes, changing nothing on a host that
# already can.
#
#   tools/kind-host.sh IMAGE     IMAGE: any local image with /bin/true (the probe's container)
#
# kind runs each node as a `--privileged` container and every command in it with
# `docker exec --privileged`. Where root lacks a capability in its bounding set (some VMs lack
# CAP_SYS_RESOURCE), runc cannot grant it and every privileged container fails with "unable to
# apply caps: operation not permitted". Only then this script registers tools/runc-nocap as
# dockerd's default runtime (/etc/docker/daemon.json, merged, the old file kept as
# daemon.json.istiolite-backup) and makes dockerd reload it. docs/e2e.md explains the trap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${1:?usage: $0 IMAGE}
RUNTIME=istiolite-nocap
INSTALLED=/usr/local/libexec/istiolite/runc-nocap
DAEMON_JSON=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

die() {
    echo "kind-host: $*" >&2
    exit 1
}

probe() {
    docker run --rm --privileged --network none --entrypoint /bin/true "$IMAGE" >/dev/null 2>&1
}

# dockerd re-reads `runtimes` and `default-runtime` on SIGHUP; a restart is needed only when
# it runs under systemd with the file unreadable at reload (never seen), so try the reload.
reload_dockerd() {
    local pid
    pid=$(pidof dockerd) || die "dockerd is not running on this machine (is DOCKER_HOST remote?)"
    kill -HUP "$pid"
    for _ in $(seq 50); do
        docker info --format '{{.DefaultRuntime}}' 2>/dev/null | grep -qx "$RUNTIME" && return
        sleep 0.1
    done
    die "dockerd did not take the default runtime $RUNTIME from $DAEMON_JSON after SIGHUP;
restart dockerd (systemctl restart docker) and run this again"
}

register_runtime() {
    [[ $(id -u) == 0 ]] || die "privileged containers fail here and fixing it edits $DAEMON_JSON: run as root"
    command -v runc >/dev/null || die "runc is not on PATH; the wrapper needs the real runc"
    install -D -m 0755 "$ROOT/tools/runc-nocap" "$INSTALLED"
    mkdir -p "$(dirname "$DAEMON_JSON")"
    if [[ -f $DAEMON_JSON && ! -f $DAEMON_JSON.istiolite-backup ]]; then
        cp "$DAEMON_JSON" "$DAEMON_JSON.istiolite-backup"
    fi
    python3 - "$DAEMON_JSON" "$RUNTIME" "$INSTALLED" <<'EOF'
import json, os, sys
path, name, wrapper = sys.argv[1:]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
config.setdefault("runtimes", {})[name] = {"path": wrapper}
config["default-runtime"] = name
with open(path + ".new", "w") as out:
    json.dump(config, out, indent=2)
os.replace(path + ".new", path)
EOF
    echo "kind-host: privileged containers fail on this host (root lacks a capability);" \
        "registered $INSTALLED as dockerd's default runtime in $DAEMON_JSON" >&2
    reload_dockerd
}

main() {
    docker version >/dev/null 2>&1 ||
        die "cannot reach the Docker engine (docker version fails); start dockerd first"
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no local image $IMAGE for the probe"
    if probe; then
        return
    fi
    register_runtime
    probe || die "a privileged container still fails with $RUNTIME as default runtime:
$(docker run --rm --privileged --network none --entrypoint /bin/true "$IMAGE" 2>&1 | tail -n3)"
}

main "$@"
