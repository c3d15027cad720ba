#!/usr/bin/env bash
# Build the base image of istiolite's container images from Debian's packages, without any
# registry: debootstrap a minimal Debian bookworm root filesystem and `docker import` it.
#
#   tools/base-image.sh            build (or find already built) the base image; prints its tag
#   tools/base-image.sh --rebuild  debootstrap afresh (picks up new security updates)
#
# Output: the image $BASE_IMAGE (default istiolite/base:bookworm), imported from the root
# filesystem tarball $ISTIOLITE_CACHE/images/debian-bookworm-minbase-<arch>.tar.gz. With the
# image present this is a no-op; with only the tarball it is an import (seconds); with neither
# it is a debootstrap from the Debian mirror (about 2 minutes). Needs root (debootstrap
# chroots) and a running Docker engine. With access to Docker Hub, `debian:bookworm-slim`
# serves as well: `make images BASE_IMAGE=debian:bookworm-slim` (docs/images.md).
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
TAG=${BASE_IMAGE:-istiolite/base:$SUITE}

CACHE=${ISTIOLITE_CACHE:-$HOME/.cache/istiolite}
IMAGES=$CACHE/images
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
TARBALL=$IMAGES/debian-$SUITE-minbase-$ARCH.tar.gz

die() {
    echo "base-image: $*" >&2
    exit 1
}

preflight() {
    [[ $(id -u) == 0 ]] || die "debootstrap needs root (it unpacks packages and chroots); run as root"
    command -v debootstrap >/dev/null ||
        die "debootstrap is not installed: apt-get install debootstrap"
}

# The apt setup Debian's own container images ship: every bookworm suite (so packages
# installed by the Dockerfiles get security fixes), no package caches or translations kept in
# layers, and no documentation unpacked (as in bookworm-slim), copyright files excepted.
configure_rootfs() {
    local root=$1
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
}

# Strip what a container never uses and what would make two builds differ for no reason.
clean_rootfs() {
    local root=$1
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{man,groff,info,locale,lintian}/*
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old
    rm -rf "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
    find "$root/var/log" -type f -delete
    # The engine provides these per container.
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    # Each container gets its own identity at first boot, never this build's.
    : >"$root/etc/machine-id"
}

bootstrap() {
    local work root
    work=$(mktemp -d "$IMAGES/rootfs.XXXXXX")
    root=$work/rootfs
    # A failed run must not leave a half-built tree (or its mounts) behind.
    # shellcheck disable=SC2064 # the trap outlives this function's locals: expand them now
    trap "umount '$root/proc' 2>/dev/null; rm -rf '$work'" EXIT
    echo "base-image: debootstrap --variant=minbase $SUITE from $MIRROR" >&2
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$root" "$MIRROR" >&2
    configure_rootfs "$root"
    # debootstrap only reads the release itself; updates and security fixes come from the
    # other suites. Maintainer scripts expect /proc.
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -q dist-upgrade >&2
    umount "$root/proc"
    clean_rootfs "$root"
    tar --numeric-owner --xattrs --sort=name -C "$root" -czf "$work/rootfs.tar.gz" .
    mv "$work/rootfs.tar.gz" "$TARBALL"
    rm -rf "$work"
    trap - EXIT
}

import_image() {
    echo "base-image: importing $TARBALL as $TAG" >&2
    # No `created` label: images built on this one inherit its labels, and would carry the
    # base's date as theirs; `docker inspect` has the import time anyway.
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL org.opencontainers.image.title=istiolite-base" \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase from $MIRROR\"" \
        --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
        "$TARBALL" "$TAG" >/dev/null
}

main() {
    local rebuild=0
    case ${1:-} in
        "") ;;
        --rebuild) rebuild=1 ;;
        *) die "usage: $0 [--rebuild]" ;;
    esac
    docker version >/dev/null 2>&1 ||
        die "cannot reach the Docker engine (docker version fails); start dockerd first"

    mkdir -p "$IMAGES"
    # Two builds at once (CI and a developer) must not debootstrap into the same tarball.
    exec 9>"$IMAGES/.lock"
    flock 9

    if ((rebuild)); then
        rm -f "$TARBALL"
    elif docker image inspect "$TAG" >/dev/null 2>&1; then
        echo "base-image: $TAG already present" >&2
        echo "$TAG"
        return
    fi
    if [[ ! -f $TARBALL ]]; then
        preflight
        bootstrap
    fi
    import_image
    echo "$TAG"
}

main "$@"
