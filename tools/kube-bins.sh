#!/usr/bin/env bash
# Build Kubernetes' binaries and etcd from the Go module proxy: kube-apiserver,
# kube-controller-manager and etcd for the `kube` test tier (a real control plane without a
# cluster, like controller-runtime's envtest), and kubelet, kubeadm, kubectl, kube-scheduler and
# kube-proxy for the offline kind node image (tools/kind-node-image.sh). All seven come from one
# `go build`: they share most packages, so the five extra cost minutes, not another build.
#
#   tools/kube-bins.sh           build (or find already built) binaries; prints their directory
#   tools/kube-bins.sh newest    print the newest Kubernetes release this machine's Go can build
#
# Output: $ISTIOLITE_CACHE/kube/<kube-version>/bin/{etcd,kube-apiserver,kube-controller-manager,
# kubelet,kubeadm,kubectl,kube-scheduler,kube-proxy}
# and the symlink $ISTIOLITE_CACHE/kube/current -> <kube-version>, which the test fixture
# (istiolite/testing/apiserver.py) reads. Nothing here is written into the repository.
set -euo pipefail

# The one place the versions are pinned. KUBE_VERSION is the newest release whose go.mod asks
# for a Go this machine has (`tools/kube-bins.sh newest` repeats that check). ETCD_VERSION is
# the etcd that release's kubeadm runs (DefaultEtcdVersion in cmd/kubeadm/app/constants), so
# that the test tier and the kind node image (its registry.k8s.io/etcd image) use one binary.
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}

CACHE=${ISTIOLITE_CACHE:-$HOME/.cache/istiolite}
KUBE_DIR=$CACHE/kube
OUT=$KUBE_DIR/$KUBE_VERSION
STAMP=$OUT/bin/.built
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
WANT_STAMP="kubernetes $KUBE_VERSION etcd $ETCD_VERSION: ${KUBE_COMMANDS[*]}"

# A private GOPATH and caches: repeated builds reuse downloaded modules and compiled packages,
# and nothing touches the developer's own Go setup. GOTOOLCHAIN=local because a silent
# toolchain download would hide that the pinned release needs a newer Go than installed.
export GOPATH=$CACHE/go
export GOMODCACHE=$CACHE/go/mod
export GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local
# Static binaries, as Kubernetes' own release builds them; no C compiler needed.
export CGO_ENABLED=0
# The wrapper modules below are written fresh; -mod=mod lets `go build` fill in go.sum.
export GOFLAGS="-mod=mod -buildvcs=false"

die() {
    echo "kube-bins: $*" >&2
    exit 1
}

find_go() {
    if command -v go >/dev/null; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        die "no Go toolchain found (looked on PATH and in /usr/local/go/bin); install Go >= 1.26"
    fi
}
# Found only when needed: the warm path (binaries already built) works without Go.
GO=

# go1.26.8 -> 1.26.8
local_go_version() {
    local v
    v=$("$GO" env GOVERSION)
    echo "${v#go}"
}

# true when version $1 <= version $2 (dotted numbers)
version_le() {
    [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$1" ]]
}

# The go.mod of module $1 at version $2, from the module cache or the proxy.
# Fails with a clear message when the proxy cannot be reached.
fetch_gomod() {
    local json err
    if ! json=$(timeout 300 "$GO" mod download -json "$1@$2" 2>&1); then
        err=$(grep -m1 '"Error"' <<<"$json" || echo "$json" | tail -n3)
        die "cannot download $1@$2 from the Go module proxy (GOPROXY=$("$GO" env GOPROXY)).
Check that the proxy is reachable from this machine and that the version exists
(go list -m -versions $1). The go command said:
$err"
    fi
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$json"
}

# The `go` directive of a go.mod file.
go_directive() {
    awk '$1 == "go" { print $2; exit }' "$1"
}

# The release's go.mod replaces its sibling modules with directories of its own repository
# (k8s.io/api => ./staging/src/k8s.io/api, go.etcd.io/etcd/api/v3 => ../api). `go install`
# refuses such modules, and a module that requires them sees only the placeholder versions
# (v0.0.0). So each local-path replace becomes a replace with the published module at the
# version released together with it ($2). Lines pointing at FORBIDDEN_DEPENDENCY are guards
# against bad imports, not real modules, and are dropped.
published_replaces() {
    awk -v version="$2" '
        /^replace[[:space:]]*\($/ { block = 1; next }
        block && /^\)/ { block = 0; next }
        {
            line = $0
            sub(/^replace[[:space:]]+/, "", line)
            if (!block && line == $0) next
            sub(/^[[:space:]]+/, "", line)
            n = split(line, f, /[[:space:]]+/)
            for (i = 1; i <= n; i++) if (f[i] == "=>") break
            target = f[i + 1]
            if (target ~ /^\.\.?\// && target !~ /FORBIDDEN/) {
                printf "\t%s => %s %s\n", f[1], f[1], version
            }
        }
    ' "$1"
}

# Write a throwaway main module in $1 that requires $2@$3 and pins the release's siblings.
write_wrapper() {
    local dir=$1 module=$2 version=$3 gomod=$4 sibling_version=$5
    mkdir -p "$dir"
    rm -f "$dir/go.mod" "$dir/go.sum"
    {
        echo "// Generated by istiolite tools/kube-bins.sh; safe to delete."
        echo "module istiolite.local/kube-bins/$(basename "$dir")"
        echo
        echo "go $(go_directive "$gomod")"
        # The release's GODEBUG defaults only apply when its go.mod is the main module.
        grep -E '^godebug[[:space:]]' "$gomod" || true
        echo
        echo "require $module $version"
        echo
        echo "replace ("
        published_replaces "$gomod" "$sibling_version"
        echo ")"
    } >"$dir/go.mod"
}

# Newest stable k8s.io/kubernetes on the proxy whose go directive this Go satisfies.
newest_buildable() {
    local have versions v gomod need
    have=$(local_go_version)
    versions=$(timeout 120 "$GO" list -m -versions k8s.io/kubernetes) ||
        die "cannot list k8s.io/kubernetes versions from the Go module proxy (GOPROXY=$("$GO" env GOPROXY))"
    for v in $(tr ' ' '\n' <<<"$versions" | grep -E '^v1\.[0-9]+\.[0-9]+$' | sort -rV); do
        gomod=$(fetch_gomod k8s.io/kubernetes "$v")
        need=$(go_directive "$gomod")
        if version_le "$need" "$have"; then
            echo "$v (go.mod: go $need; this machine: go $have)"
            return
        fi
        echo "skip $v: needs go $need, this machine has go $have" >&2
    done
    die "no Kubernetes release on the proxy builds with go $have"
}

# Both releases' go.mod files, fetched before anything is built: a wrong version or an
# unreachable proxy fails in seconds, not after a long build of the other binary.
preflight() {
    local kube_gomod etcd_gomod gomod
    # Plain assignments, so that set -e stops here when a download fails.
    kube_gomod=$(fetch_gomod k8s.io/kubernetes "$KUBE_VERSION")
    etcd_gomod=$(fetch_gomod go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
    for gomod in "$kube_gomod" "$etcd_gomod"; do
        version_le "$(go_directive "$gomod")" "$(local_go_version)" ||
            die "$gomod asks for go $(go_directive "$gomod"), this machine has $("$GO" env GOVERSION).
Pick an older KUBE_VERSION (tools/kube-bins.sh newest) or ETCD_VERSION, or install a newer Go."
    done
}

build_kube() {
    local gomod src minor ldflags
    gomod=$(fetch_gomod k8s.io/kubernetes "$KUBE_VERSION")
    src=$OUT/src/kubernetes
    # Staging modules are published as v0.N.P alongside v1.N.P.
    write_wrapper "$src" k8s.io/kubernetes "$KUBE_VERSION" "$gomod" "v0.${KUBE_VERSION#v1.}"
    minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    # What Kubernetes' hack/lib/version.sh stamps in; without it the binaries report
    # v0.0.0-master, and clients that check the server's version see a nonsense one.
    ldflags="-s -w"
    for kv in "gitVersion=$KUBE_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
        "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
        ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
    done
    echo "kube-bins: building ${KUBE_COMMANDS[*]} $KUBE_VERSION (cold: ~25 min on 2 cores)" >&2
    (cd "$src" && nice "$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/bin.new/" \
        "${KUBE_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}")
}

build_etcd() {
    local gomod src
    gomod=$(fetch_gomod go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
    src=$OUT/src/etcd
    # etcd releases all its modules (api, client/pkg, client/v3, pkg, server) with one version.
    write_wrapper "$src" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$gomod" "$ETCD_VERSION"
    echo "kube-bins: building etcd $ETCD_VERSION" >&2
    # Since 3.6 the server module's root package is etcd's main (it calls etcdmain.Main).
    (cd "$src" && nice "$GO" build -trimpath -ldflags "-s -w" -o "$OUT/bin.new/etcd" \
        go.etcd.io/etcd/server/v3)
}

main() {
    if [[ ${1:-} == newest ]]; then
        GO=$(find_go)
        newest_buildable
        return
    fi
    [[ $# -eq 0 ]] || die "usage: $0 [newest]"

    mkdir -p "$KUBE_DIR"
    # Two engineers (or CI and a developer) running this at once must not interleave builds.
    exec 9>"$KUBE_DIR/.lock"
    flock 9

    if [[ -f $STAMP && $(<"$STAMP") == "$WANT_STAMP" ]]; then
        echo "kube-bins: $WANT_STAMP already built" >&2
    else
        GO=$(find_go)
        preflight
        rm -rf "$OUT/bin.new"
        mkdir -p "$OUT/bin.new"
        build_etcd
        build_kube
        echo "$WANT_STAMP" >"$OUT/bin.new/.built"
        rm -rf "${OUT:?}/bin"
        mv "$OUT/bin.new" "$OUT/bin"
        "$OUT/bin/kube-apiserver" --version >&2
        "$OUT/bin/etcd" --version | sed -n 1p >&2
    fi
    ln -sfn "$KUBE_VERSION" "$KUBE_DIR/current"
    echo "$OUT/bin"
}

main "$@"
