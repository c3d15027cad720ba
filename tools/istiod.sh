#!/usr/bin/env bash
# Build Istio's own pilot-discovery (istiod) from the Go module proxy, for the side-by-side
# benchmark (`make bench BENCH=istiod`). Nothing of Istio is kept in the repository.
#
#   tools/istiod.sh        build (or find already built) istiod; prints the binary's path
#
# Output: $ISTIOLITE_CACHE/istiod/<version>/pilot-discovery and, beside it, files of the same
# module the benchmark hands to istiod at run time: Istio's CRDs (crd-all.gen.yaml, installed
# into its apiserver), and the sidecar injection template with the istiod chart's default values
# (injection-template.yaml, istio-discovery-values.yaml), from which the benchmark writes the
# injector configuration Helm would have put in the istio-sidecar-injector ConfigMap.
# istio.io/istio has no semver tags on the proxy, only pseudo-versions of its main branch;
# ISTIO_VERSION pins one. Cold: ~22 minutes and 2.7 GB of memory on 2 cores, 4.4 GB of build
# cache (shared with tools/kube-bins.sh, so client-go and friends are compiled once).
set -euo pipefail

ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}
CACHE=${ISTIOLITE_CACHE:-$HOME/.cache/istiolite}
OUT=$CACHE/istiod/$ISTIO_VERSION

export GOPATH=$CACHE/go GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

die() {
    echo "istiod: $*" >&2
    exit 1
}

main() {
    [[ $# -eq 0 ]] || die "usage: $0 (the version comes from ISTIO_VERSION)"
    mkdir -p "$OUT"
    exec 9>"$OUT/.lock"
    flock 9
    if [[ ! -x $OUT/pilot-discovery ]]; then
        local go dir gobin
        go=$(command -v go || echo /usr/local/go/bin/go)
        [[ -x $go ]] || die "no Go toolchain found; install Go >= 1.26"
        echo "istiod: building istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION (cold: ~22 min)" >&2
        gobin=$(mktemp -d "$OUT/.gobin.XXXXXX")
        # Istio's release builds use these tags; buildVersion is what istiod reports and logs.
        GOBIN=$gobin nice "$go" install -trimpath -tags=vtprotobuf,disable_pgv \
            -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_VERSION" \
            "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION" >&2
        mv "$gobin/pilot-discovery" "$OUT/pilot-discovery"
        rmdir "$gobin"
    fi
    if [[ ! -f $OUT/crd-all.gen.yaml || ! -f $OUT/injection-template.yaml ||
        ! -f $OUT/istio-discovery-values.yaml ]]; then
        module_files
    fi
    echo "$OUT/pilot-discovery"
}

# Istio's files the benchmark needs, copied out of the module (already in the module cache
# after a build, so this is quick).
module_files() {
    local go dir chart
    go=$(command -v go || echo /usr/local/go/bin/go)
    dir=$("$go" mod download -json "istio.io/istio@$ISTIO_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d $dir ]] || die "istio.io/istio@$ISTIO_VERSION is not in the module cache"
    chart=$dir/manifests/charts/istio-control/istio-discovery
    install -m 0644 "$dir/manifests/charts/base/files/crd-all.gen.yaml" "$OUT/crd-all.gen.yaml"
    install -m 0644 "$chart/files/injection-template.yaml" "$OUT/injection-template.yaml"
    install -m 0644 "$chart/values.yaml" "$OUT/istio-discovery-values.yaml"
}

main "$@"
