#!/usr/bin/env bash
# Build istiolite's two images, $IMAGE_HUB/proxy:$IMAGE_TAG (agent/Dockerfile) and
# $IMAGE_HUB/pilot:$IMAGE_TAG (discovery/Dockerfile), from this repository, and the sample
# app's image istiolite/bookinfo:latest (samples/bookinfo/Dockerfile, the name its manifests use).
#
#   IMAGE_HUB=istiolite IMAGE_TAG=0.1.0 tools/build-images.sh     (what `make images` runs)
#
# BASE_IMAGE defaults to istiolite/base:bookworm, built here by tools/base-image.sh when it is
# missing; any other value (debian:bookworm-slim) is left to the engine to pull. Unchanged
# sources rebuild nothing: every layer comes from the engine's cache.
#
# Certificates in /usr/local/share/ca-certificates (Debian's place for locally added CAs, e.g.
# a TLS-intercepting proxy's) are trusted by pip inside the build; EXTRA_CA_CERTS_DIR names
# another directory, or an empty one to add none. The images themselves never contain them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE_HUB=${IMAGE_HUB:-istiolite}
IMAGE_TAG=${IMAGE_TAG:-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/istiolite/__init__.py")}
DEFAULT_BASE=istiolite/base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$DEFAULT_BASE}
EXTRA_CA_CERTS_DIR=${EXTRA_CA_CERTS_DIR-/usr/local/share/ca-certificates}
SAMPLE_IMAGE=${SAMPLE_IMAGE:-istiolite/bookinfo:latest}

die() {
    echo "build-images: $*" >&2
    exit 1
}

extra_ca_certs() {
    local dir=$EXTRA_CA_CERTS_DIR
    [[ -n $dir && -d $dir ]] || return 0
    find "$dir" -name '*.crt' -type f -print0 | sort -z | xargs -0 -r cat
}

# build DOCKERFILE IMAGE [CONTEXT [BUILD-ARG...]]
build() {
    local dockerfile=$1 image=$2 context=${3:-$ROOT} start
    shift $(($# < 3 ? $# : 3))
    start=$(date +%s)
    echo "build-images: $image from $dockerfile (base $BASE_IMAGE)" >&2
    # Progress goes to stderr so that stdout carries only the image names. DOCKER_BUILD_NETWORK
    # (e.g. host) is for engines whose containers have no network of their own: the builds
    # run apt-get and pip.
    docker build --file "$ROOT/$dockerfile" --tag "$image" \
        ${DOCKER_BUILD_NETWORK:+--network "$DOCKER_BUILD_NETWORK"} \
        --build-arg BASE_IMAGE="$BASE_IMAGE" \
        --build-arg EXTRA_CA_CERTS="$CA_CERTS" \
        --build-arg VERSION="$IMAGE_TAG" \
        --build-arg REVISION="$REVISION" \
        "${@/#/--build-arg=}" \
        "$context" >&2
    echo "build-images: $image built in $(($(date +%s) - start)) s" >&2
}

main() {
    [[ $# -eq 0 ]] || die "usage: $0 (settings come from IMAGE_HUB, IMAGE_TAG, BASE_IMAGE)"
    [[ -n $IMAGE_TAG ]] || die "cannot read __version__ from istiolite/__init__.py; set IMAGE_TAG"
    docker version >/dev/null 2>&1 ||
        die "cannot reach the Docker engine (docker version fails); start dockerd first"
    if [[ $BASE_IMAGE == "$DEFAULT_BASE" ]]; then
        BASE_IMAGE="$DEFAULT_BASE" "$ROOT/tools/base-image.sh" >/dev/null
    fi
    CA_CERTS=$(extra_ca_certs)
    # Only committed state is named; a dirty tree is marked so that nobody trusts the label.
    REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)
    # GIT_OPTIONAL_LOCKS=0: a look at the tree must not rewrite the index under a running git.
    if [[ -n $REVISION ]] && [[ -n $(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then
        REVISION+="-dirty"
    fi
    # The proxy first: the pilot's build stage is a prefix of it and comes from the cache.
    build agent/Dockerfile "$IMAGE_HUB/proxy:$IMAGE_TAG"
    build discovery/Dockerfile "$IMAGE_HUB/pilot:$IMAGE_TAG"
    build samples/bookinfo/Dockerfile "$SAMPLE_IMAGE" "$ROOT/samples/bookinfo" \
        "PILOT_IMAGE=$IMAGE_HUB/pilot:$IMAGE_TAG"
    echo "$IMAGE_HUB/proxy:$IMAGE_TAG"
    echo "$IMAGE_HUB/pilot:$IMAGE_TAG"
    echo "$SAMPLE_IMAGE"
}

main "$@"
