#!/usr/bin/env bash
# Build a kind node image and the kind CLI without any container registry: Debian's packages,
# the Go module proxy and kind's own node-image files (images/base in kind's module).
#
#   tools/kind-node-image.sh          build (or find) both; prints the kind binary's path and
#                                     the node image's name, one per line
#   tools/kind-node-image.sh kind     only the kind CLI; prints its path
#
# The image, $NODE_IMAGE (istiolite/kind-node:<kube-version>), is what kind's own
# kindest/node images are: systemd, containerd and runc, kubelet/kubeadm/kubectl, crictl, the
# CNI plugins, and the control-plane images kubeadm runs preloaded into containerd
# (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd, coredns, pause)
# under their registry.k8s.io names, so a cluster starts without pulling anything.
# Where kindest/node can be pulled, `make kind-up KIND_NODE_IMAGE=kindest/node:...` skips all of
# this but the kind CLI (docs/e2e.md).
#
# Pieces are cached under $ISTIOLITE_CACHE (default ~/.cache/istiolite) and rebuilt only when
# their inputs change: the Kubernetes binaries come from tools/kube-bins.sh (one shared Go
# cache), the node's Debian root filesystem is a tarball keyed by its package list, and the
# image carries a label with the hash of everything it was made from. Needs root (debootstrap
# and chroot) and a Docker engine. Cold: ~35 min on 2 cores, most of it the Kubernetes build;
# warm: seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The versions kind v0.33.0's own node image is built with, where Debian or the proxy has them.
KIND_VERSION=${KIND_VERSION:-v0.33.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.6}   # kubeadm v1.37's CoreDNSVersion
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
PAUSE_TAGS=(3.10.2 3.10)                      # kubeadm's PauseVersion; kind's containerd sandbox_image
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# kind's base image packages (images/base/Dockerfile), with Debian's containerd, runc and CNI
# plugins in place of the ones kind builds from source; storage-test packages left out.
NODE_PACKAGES=(
    systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod
    libseccomp2 pigz bash ca-certificates curl jq procps
    containerd runc containernetworking-plugins
)

CACHE=${ISTIOLITE_CACHE:-$HOME/.cache/istiolite}
WORK=$CACHE/kind
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)

export GOPATH=$CACHE/go GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

die() {
    echo "kind-node-image: $*" >&2
    exit 1
}

log() {
    echo "kind-node-image: $*" >&2
}

find_go() {
    command -v go || { [[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go; } ||
        die "no Go toolchain found (looked on PATH and in /usr/local/go/bin); install Go >= 1.26"
}

# `go install MODULE/PKG@VERSION` into $WORK/bin/NAME-VERSION once; prints the path.
go_tool() {
    local name=$1 package=$2 version=$3 out=$WORK/bin/$1-$3
    if [[ ! -x $out ]]; then
        log "building $name $version from the Go module proxy"
        local gobin
        gobin=$(mktemp -d "$WORK/bin/.gobin.XXXXXX")
        GOBIN=$gobin nice "$(find_go)" install -trimpath -ldflags "-s -w" "$package@$version" >&2
        mv "$gobin/$(basename "$package")" "$out"
        rmdir "$gobin"
    fi
    echo "$out"
}

kind_cli() {
    go_tool kind sigs.k8s.io/kind "$KIND_VERSION"
}

# The directory of a module in the module cache, downloading it when missing.
module_dir() {
    "$(find_go)" mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# --- the node's root filesystem: Debian bookworm with the node's packages -------------------

rootfs_tarball() {
    local key tarball
    key=$(printf '%s\n' "$SUITE" "$MIRROR" "${NODE_PACKAGES[@]}" | sha256sum | cut -c1-12)
    tarball=$WORK/node-rootfs-$SUITE-$ARCH-$key.tar.gz
    if [[ ! -f $tarball ]]; then
        [[ $(id -u) == 0 ]] || die "debootstrap needs root; run as root"
        command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
        bootstrap_rootfs "$tarball"
    fi
    echo "$tarball"
}

bootstrap_rootfs() {
    local tarball=$1 work root
    work=$(mktemp -d "$WORK/rootfs.XXXXXX")
    root=$work/rootfs
    # shellcheck disable=SC2064 # expand now: the trap outlives this function's locals
    trap "umount '$root/proc' 2>/dev/null; rm -rf --one-file-system '$work'" EXIT
    log "debootstrap --variant=minbase $SUITE from $MIRROR, then ${NODE_PACKAGES[*]}"
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$root" "$MIRROR" >&2
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    # Packages must not start their services inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -q dist-upgrade >&2
    DEBIAN_FRONTEND=noninteractive chroot "$root" \
        apt-get -y -q install --no-install-recommends "${NODE_PACKAGES[@]}" >&2
    umount "$root/proc"
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old
    rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/tmp/* "$root"/var/tmp/*
    find "$root/var/log" -type f -delete
    : >"$root/etc/machine-id"
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    tar --numeric-owner --xattrs -C "$root" -czf "$work/rootfs.tar.gz" .
    mv "$work/rootfs.tar.gz" "$tarball"
    rm -rf "$work"
    trap - EXIT
}

# --- the control-plane images, as docker-archive tarballs to preload ------------------------

# An image holding static binaries under /usr/local/bin, on an empty root.
static_image() {
    local name=$1 entrypoint=$2 dir
    shift 2
    dir=$(mktemp -d "$WORK/image.XXXXXX")
    mkdir -p "$dir/usr/local/bin" "$dir/tmp" "$dir/etc"
    chmod 1777 "$dir/tmp"
    install -m 0755 "$@" "$dir/usr/local/bin/"
    # Who the processes are: some libraries look the uid up.
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
    tar --numeric-owner -C "$dir" -c . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change "ENTRYPOINT [\"$entrypoint\"]" - "$name" >/dev/null
    rm -rf "$dir"
}

# kube-proxy programs iptables in the node's network namespace, with the backend (legacy or
# nft) the node already uses: as Kubernetes' own image, iptables there is a wrapper that picks
# the backend holding rules on first use (kubernetes-sigs/iptables-wrappers' approach).
kube_proxy_image() {
    local name=$1 binary=$2 base=$3 dir
    dir=$(mktemp -d "$WORK/image.XXXXXX")
    cp "$binary" "$dir/kube-proxy"
    cat >"$dir/iptables-wrapper" <<'EOF'
#!/bin/sh
# Point iptables*, ip6tables* at the backend that holds the node's rules, then run the command.
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-' || true)
nft=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-' || true)
mode=nft
[ "${legacy:-0}" -gt "${nft:-0}" ] && mode=legacy
update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
exec "$0" "$@"
EOF
    cat >"$dir/Dockerfile" <<EOF
FROM $base
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack \\
    && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY kube-proxy /usr/local/bin/kube-proxy
COPY iptables-wrapper /usr/sbin/iptables-wrapper
RUN chmod 0755 /usr/local/bin/kube-proxy /usr/sbin/iptables-wrapper \\
    && for v in '' 6; do \\
        update-alternatives --install /usr/sbin/ip\${v}tables ip\${v}tables /usr/sbin/iptables-wrapper 200 \\
            --slave /usr/sbin/ip\${v}tables-save ip\${v}tables-save /usr/sbin/iptables-wrapper \\
            --slave /usr/sbin/ip\${v}tables-restore ip\${v}tables-restore /usr/sbin/iptables-wrapper \\
        && update-alternatives --set ip\${v}tables /usr/sbin/iptables-wrapper; \\
    done
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
EOF
    docker build ${DOCKER_BUILD_NETWORK:+--network "$DOCKER_BUILD_NETWORK"} -q -t "$name" "$dir" >/dev/null
    rm -rf "$dir"
}

pause_binary() {
    local out=$WORK/bin/pause src
    if [[ ! -x $out ]]; then
        src=$(module_dir k8s.io/kubernetes "$KUBE_VERSION")/build/pause/linux/pause.c
        command -v gcc >/dev/null || die "gcc is needed to build pause (apt-get install gcc libc6-dev)"
        gcc -Os -Wall -Werror -static -DVERSION="v$(date +%Y%m%d)-istiolite" -o "$out" "$src"
        strip "$out"
    fi
    echo "$out"
}

# CoreDNS with the plugins kubeadm's Corefile uses (`metrics` is its `prometheus`) and a few a
# user adds, not all 59 of the release: the cloud providers' SDKs the others pull in are most
# of its build time. A main module of our own, as the release's coredns.go is, imports them.
COREDNS_PLUGINS=(errors health ready kubernetes metrics forward cache loop reload loadbalance log hosts rewrite)

coredns_binary() {
    local out=$WORK/bin/coredns-$COREDNS_VERSION src=$WORK/src/coredns plugin
    if [[ ! -x $out ]]; then
        log "building CoreDNS $COREDNS_VERSION (plugins: ${COREDNS_PLUGINS[*]})"
        mkdir -p "$src"
        printf 'module istiolite.local/coredns\n\ngo %s\n\nrequire github.com/coredns/coredns %s\n' \
            "$(awk '$1 == "go" { print $2; exit }' "$(module_dir github.com/coredns/coredns "$COREDNS_VERSION")/go.mod")" \
            "$COREDNS_VERSION" >"$src/go.mod"
        {
            echo "// Generated by istiolite tools/kind-node-image.sh; safe to delete."
            echo "package main"
            echo
            echo "import ("
            echo '	"github.com/coredns/coredns/coremain"'
            for plugin in "${COREDNS_PLUGINS[@]}"; do
                echo "	_ \"github.com/coredns/coredns/plugin/$plugin\""
            done
            echo ")"
            echo
            echo "func main() { coremain.Run() }"
        } >"$src/main.go"
        (cd "$src" && nice "$(find_go)" build -trimpath -ldflags "-s -w" -o "$out" .) >&2
    fi
    echo "$out"
}

# Every image kubeadm and kind run, saved as one docker-archive per image in $1.
control_plane_images() {
    local dir=$1 base=$2 bin=$3 coredns pause repo=registry.k8s.io name tag
    coredns=$(coredns_binary)
    pause=$(pause_binary)
    for name in kube-apiserver kube-controller-manager kube-scheduler; do
        static_image "$repo/$name:$KUBE_VERSION" "/usr/local/bin/$name" "$bin/$name"
    done
    kube_proxy_image "$repo/kube-proxy:$KUBE_VERSION" "$bin/kube-proxy" "$base"
    static_image "$repo/etcd:$ETCD_TAG" /usr/local/bin/etcd "$bin/etcd"
    # CoreDNS's Deployment relies on the upstream image's entrypoint path, /coredns.
    local cdir
    cdir=$(mktemp -d "$WORK/image.XXXXXX")
    install -m 0755 "$coredns" "$cdir/coredns"
    tar --numeric-owner -C "$cdir" -c . | docker import --change 'ENTRYPOINT ["/coredns"]' \
        - "$repo/coredns/coredns:$COREDNS_VERSION" >/dev/null
    rm -rf "$cdir"
    for tag in "${PAUSE_TAGS[@]}"; do
        static_image "$repo/pause:$tag" /usr/local/bin/pause "$pause"
    done
    local images=(
        "$repo/kube-apiserver:$KUBE_VERSION" "$repo/kube-controller-manager:$KUBE_VERSION"
        "$repo/kube-scheduler:$KUBE_VERSION" "$repo/kube-proxy:$KUBE_VERSION"
        "$repo/etcd:$ETCD_TAG" "$repo/coredns/coredns:$COREDNS_VERSION"
    )
    for tag in "${PAUSE_TAGS[@]}"; do images+=("$repo/pause:$tag"); done
    local i=0
    for name in "${images[@]}"; do
        docker save -o "$dir/$((i++)).tar" "$name"
    done
    # They live on in the node image; the engine needs no copy.
    docker image rm "${images[@]}" >/dev/null
}

# --- the node image -------------------------------------------------------------------------

# kind's images/base files and clean-up, as its Dockerfile applies them.
install_kind_files() {
    local root=$1 files=$2
    install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
    mkdir -p "$root/kind/bin"
    install -m 0644 "$files"/kind/README.txt "$root/kind/"
    install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
    install -m 0644 "$files"/etc/crictl.yaml "$root/etc/"
    install -D -m 0644 "$files"/etc/containerd/config.toml "$root/etc/containerd/config.toml"
    install -D -m 0644 "$files"/etc/default/kubelet "$root/etc/default/kubelet"
    install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
    mkdir -p "$root/etc/systemd/system/kubelet.service.d"
    find "$files/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 {} "$root/etc/systemd/system/" \;
    install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
    find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/*
    rm -f "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/basic.target.wants/*
    rm -f "$root"/lib/systemd/system/sockets.target.wants/*udev* "$root"/lib/systemd/system/sockets.target.wants/*initctl*
    echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
    ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
    chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >&2
    chroot "$root" systemctl mask systemd-binfmt.service >&2
    mkdir -p "$root/etc/kubernetes/manifests"
}

# Debian installs containerd in /usr/bin and the CNI plugins in /usr/lib/cni; kind's unit and
# the kubelet look in /usr/local/bin and /opt/cni/bin.
install_node_binaries() {
    local root=$1 bin=$2 crictl=$3 plugin
    ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
    install -m 0755 "$bin/kubelet" "$bin/kubeadm" "$bin/kubectl" "$root/usr/bin/"
    install -m 0755 "$crictl" "$root/usr/local/bin/crictl"
    mkdir -p "$root/opt/cni/bin"
    for plugin in "$root"/usr/lib/cni/*; do
        ln -sf "/usr/lib/cni/$(basename "$plugin")" "$root/opt/cni/bin/"
    done
    # The runtime spec containerd starts containers from, as kind's Dockerfile generates it.
    chroot "$root" ctr oci spec |
        jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
        jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
    echo "$KUBE_VERSION" >"$root/kind/version"
}

# Import the image archives into the node's containerd (namespace k8s.io, pinned, unpacked on
# first use), by running the node's own containerd against its root filesystem: kind does the
# same inside a running node container, which would need a privileged container here.
preload_images() {
    local root=$1 archives=$2 state=/run/istiolite-preload pid archive
    mkdir -p "$root/preload" "$root$state"
    cp "$archives"/*.tar "$root/preload/"
    cat >"$root$state/config.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "$state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$state/containerd.sock"
EOF
    mount -t proc proc "$root/proc"
    chroot "$root" containerd --config "$state/config.toml" >"$WORK/preload-containerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [[ -S $root$state/containerd.sock ]] && break
        sleep 0.1
    done
    [[ -S $root$state/containerd.sock ]] || {
        kill "$pid" 2>/dev/null
        die "the node's containerd did not start: $(tail -n5 "$WORK/preload-containerd.log")"
    }
    local ctr=(chroot "$root" ctr --address "$state/containerd.sock" -n k8s.io) ref
    for archive in "$root"/preload/*.tar; do
        "${ctr[@]}" images import --no-unpack "/preload/$(basename "$archive")" >&2
    done
    # Pinned: the kubelet's image garbage collection never removes them. (containerd 1.6's
    # `ctr images import` has no --label, so the label is set afterwards.)
    for ref in $("${ctr[@]}" images ls -q); do
        "${ctr[@]}" images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
    done
    "${ctr[@]}" images ls >&2
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    umount "$root/proc"
    rm -rf "$root/preload" "${root:?}$state"
}

assemble() {
    local tag=$1 hash=$2 rootfs=$3 bin=$4 crictl=$5 base=$6 work root files
    files=$(module_dir sigs.k8s.io/kind "$KIND_VERSION")/images/base/files
    work=$(mktemp -d "$WORK/node.XXXXXX")
    root=$work/rootfs
    # shellcheck disable=SC2064
    trap "umount '$root/proc' 2>/dev/null; rm -rf --one-file-system '$work'" EXIT
    mkdir -p "$root" "$work/images"
    log "control-plane images"
    control_plane_images "$work/images" "$base" "$bin"
    log "node root filesystem"
    tar --numeric-owner --xattrs -xzf "$rootfs" -C "$root"
    install_kind_files "$root" "$files"
    install_node_binaries "$root" "$bin" "$crictl"
    preload_images "$root" "$work/images"
    log "importing the node image $tag"
    tar --numeric-owner --xattrs -C "$root" -c . | docker import - "$tag-rootfs" >/dev/null
    # docker 20.10's import cannot set STOPSIGNAL; a one-line build on top of the import can.
    cat >"$work/Dockerfile" <<EOF
FROM $tag-rootfs
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
LABEL io.istiolite.kind-node.inputs="$hash"
EOF
    docker build -q -t "$tag" "$work" >/dev/null
    docker image rm "$tag-rootfs" >/dev/null
    rm -rf "$work"
    trap - EXIT
}

main() {
    mkdir -p "$WORK/bin"
    exec 9>"$WORK/.lock"
    flock 9
    kind=$(kind_cli)
    if [[ ${1:-} == kind ]]; then
        echo "$kind"
        return
    fi
    [[ $# -eq 0 ]] || die "usage: $0 [kind]"
    docker version >/dev/null 2>&1 || die "cannot reach the Docker engine; start dockerd first"

    local bin base rootfs crictl hash
    bin=$(ISTIOLITE_CACHE=$CACHE "$ROOT/tools/kube-bins.sh")
    KUBE_VERSION=$(sed -n 's/^kubernetes \(v[^ ]*\) .*/\1/p' "$bin/.built")
    ETCD_TAG=$(sed -n 's/.* etcd v\([^:]*\):.*/\1/p' "$bin/.built")-0
    NODE_IMAGE=${NODE_IMAGE:-istiolite/kind-node:$KUBE_VERSION}
    base=$(ISTIOLITE_CACHE=$CACHE "$ROOT/tools/base-image.sh")
    rootfs=$(rootfs_tarball)
    crictl=$(go_tool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION")
    # Everything the image is made of: a change to any of it makes a new image.
    hash=$(cat "$0" "$bin/.built" <(basename "$rootfs") <(echo "$KIND_VERSION $COREDNS_VERSION $CRICTL_VERSION") \
        <(docker image inspect -f '{{.Id}}' "$base") | sha256sum | cut -c1-16)
    if [[ $(docker image inspect -f '{{index .Config.Labels "io.istiolite.kind-node.inputs"}}' "$NODE_IMAGE" 2>/dev/null) == "$hash" ]]; then
        log "$NODE_IMAGE is up to date"
    else
        [[ $(id -u) == 0 ]] || die "assembling the node image needs root (chroot); run as root"
        assemble "$NODE_IMAGE" "$hash" "$rootfs" "$bin" "$crictl" "$base"
    fi
    echo "$kind"
    echo "$NODE_IMAGE"
}

main "$@"
