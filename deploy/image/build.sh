#!/usr/bin/env bash
# Build the llm-tracer container image without any image registry: FROM scratch + the binary +
# the shared libraries it links (found with ldd) + the host's CA bundle. Uses podman, else buildah.
#
#   deploy/image/build.sh                       # release build with --features k8s, image
#                                               # localhost/llm-tracer:<version>
#   deploy/image/build.sh --binary PATH         # package an already built binary
#   deploy/image/build.sh --save llm-tracer.tar # also write a docker-archive (kind load
#                                               # image-archive, ctr -n k8s.io images import)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
image="localhost/llm-tracer:${version}"
binary=""
save=""

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --image) image="$2"; shift 2 ;;
        --save) save="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release -p tracer-user --features k8s --bin llm-tracer)
    binary="$root/target/release/llm-tracer"
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/ssl/certs"
cp "$binary" "$ctx/rootfs/usr/bin/llm-tracer"
# The dynamic loader and every library the binary links, at the same paths as on the host.
ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u |
    while read -r lib; do
        cp --parents -L "$lib" "$ctx/rootfs/"
    done
# CA roots for an https OTLP endpoint (public data, not a secret).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
fi
cp "$here/Containerfile" "$ctx/Containerfile"

if command -v podman >/dev/null; then
    podman build --network=none --pull=never -t "$image" -f "$ctx/Containerfile" "$ctx"
    [ -z "$save" ] || podman save --format docker-archive -o "$save" "$image"
elif command -v buildah >/dev/null; then
    buildah bud --network=none --pull-never -t "$image" -f "$ctx/Containerfile" "$ctx"
    [ -z "$save" ] || buildah push "$image" "docker-archive:$save:$image"
else
    echo "build.sh: needs podman or buildah (apt-get install podman)" >&2
    exit 1
fi
echo "built $image"
