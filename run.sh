#!/usr/bin/env bash
# Vigil's run command for a fresh machine: installs the system packages the
# build needs (scripts/packages.sh, shared with ./test.sh), builds Vigil and
# starts the demo on the embedded SQLite database (no configuration).
# Arguments go to `vigil demo` (e.g. --listen 127.0.0.1:9090); VIGIL_* variables
# configure it as usual. VIGIL_RELEASE=1 builds optimised (slower to build).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
install_build_packages
command -v cargo >/dev/null || {
  echo "cargo not found: install the Rust toolchain (https://rustup.rs), then run ./run.sh again" >&2
  exit 1
}
profile=()
[ "${VIGIL_RELEASE:-0}" = 1 ] && profile=(--release)
exec cargo run --locked "${profile[@]}" --bin vigil -- demo "$@"
