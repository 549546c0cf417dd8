#!/usr/bin/env bash
# Brings the demo environment up on the local Docker engine: builds its image (Debian's
# static busybox, maestro-guest and a template, FROM scratch), builds maestro, and runs
# `maestro start`.
# Tear it down with:  target/release/maestro -f examples/demo/maestro.yaml stop -a && \
#                     target/release/maestro -f examples/demo/maestro.yaml clean
set -euo pipefail
cd "$(dirname "$0")/../.."

busybox=/bin/busybox
if ! [ -x "$busybox" ]; then
  echo "installing busybox-static (for the demo image)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
# maestro-guest, static: musl if the target can be added, else a static glibc build.
guest_target=x86_64-unknown-linux-musl
guest_flags=""
if ! rustup target list --installed 2>/dev/null | grep -qx "$guest_target" \
   && ! rustup target add "$guest_target" >/dev/null 2>&1; then
  guest_target=x86_64-unknown-linux-gnu
  guest_flags="-C target-feature=+crt-static"
fi
RUSTFLAGS="$guest_flags" cargo build -q -p maestro-guest --profile guest --target "$guest_target"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$busybox" "$context/busybox"
cp "target/$guest_target/guest/maestro-guest" "$context/"
cp examples/demo/image/Dockerfile examples/demo/image/index.html.j2 "$context/"
if ! log=$(docker build -q -t maestro-demo:latest "$context" 2>&1); then
  echo "$log" >&2
  exit 1
fi

cargo build --release -q -p maestro
target/release/maestro -f examples/demo/maestro.yaml start "$@"
echo
target/release/maestro -f examples/demo/maestro.yaml status
echo
echo "Each instance serves a page naming the peers maestro told it about:"
echo "  http://127.0.0.1:18080/ (web), :18101 and :18102 (api), :18100 (store)"
