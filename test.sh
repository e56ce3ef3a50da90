#!/usr/bin/env bash
# Vigil's one test command. On a fresh machine it installs what the suite
# needs, finds or starts PostgreSQL, then runs: rustfmt check, clippy
# (-D warnings), every test of the workspace on SQLite and PostgreSQL, and
# each fuzz target briefly.
#
# PostgreSQL: $VIGIL_TEST_DATABASE_URL (a superuser/owner URL) if set; else
# the server on 127.0.0.1:5432 if it answers; else a throwaway cluster made
# with the system's initdb/pg_ctl in a temp dir (apt-installed if missing).
# VIGIL_TEST_THROWAWAY_PG=1 forces the throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\n==> %s\n' "$*"; }

# --- system packages ---------------------------------------------------------
apt_missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
require_pkg() { for p in "$@"; do have_pkg "$p" || apt_missing+=("$p"); done; }
apt_install() {
  [ "${#apt_missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${apt_missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
  apt_missing=()
}
if command -v dpkg-query >/dev/null; then
  require_pkg pkg-config libssl-dev
  # samael's xmlsec binding (SAML signatures): headers and bindgen's libclang.
  require_pkg libxmlsec1-dev libxml2-dev libclang-dev
  # The SAML IdP of the SSO tests, run with `php -S`.
  require_pkg simplesamlphp php-cli php-xml php-mbstring
  # The PostgreSQL server binaries: a throwaway cluster needs them, and so
  # does the e2e test that restarts a cluster of its own mid-run.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || require_pkg postgresql
  # Node.js runs the OpenID Connect provider of the SSO tests.
  command -v node >/dev/null || require_pkg nodejs
  command -v npm >/dev/null || require_pkg npm
  apt_install
fi

# --- identity providers for the SSO tests ----------------------------------------
# npm `oidc-provider`, pinned by e2e/idp/oidc/package-lock.json.
if [ ! -d e2e/idp/oidc/node_modules/oidc-provider ]; then
  log "installing the test OpenID Connect provider (npm ci)"
  npm ci --prefix e2e/idp/oidc --no-audit --no-fund --loglevel=error
fi

# --- PostgreSQL ----------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_tmp=""
cleanup() {
  if [ -n "$pg_tmp" ]; then
    runas "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_tmp"
  fi
}
trap cleanup EXIT
runas() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid="$pg_user" --regid="$pg_user" --clear-groups -- "$@"; else "$@"; fi
}
start_throwaway_pg() {
  pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)" 2>/dev/null || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    require_pkg postgresql
    apt_install
    pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
  fi
  pg_user=$(id -u postgres 2>/dev/null || echo 65534)
  pg_tmp=$(mktemp -d /tmp/vigil-pg.XXXXXX)
  chmod 755 "$pg_tmp"
  [ "$(id -u)" -eq 0 ] && chown "$pg_user" "$pg_tmp"
  local port=55432
  while port_open "$port"; do port=$((port + 1)); done
  log "starting a throwaway PostgreSQL ($pg_bin) on 127.0.0.1:$port"
  runas "$pg_bin/initdb" -D "$pg_tmp/data" -U postgres --auth=trust -E UTF8 >/dev/null
  runas "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pg_tmp -c fsync=off" start >/dev/null
  export VIGIL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}
if [ -n "${VIGIL_TEST_DATABASE_URL:-}" ]; then
  log "PostgreSQL from VIGIL_TEST_DATABASE_URL"
elif [ "${VIGIL_TEST_THROWAWAY_PG:-0}" != 1 ] && port_open 5432; then
  export VIGIL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
  log "PostgreSQL on 127.0.0.1:5432"
else
  start_throwaway_pg
fi

# --- checks and tests ------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "building (once, reused by every test stage)"
cargo build --workspace --all-targets --locked
log "tests (SQLite and PostgreSQL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# --- fuzzing -----------------------------------------------------------------------
# Each cargo-fuzz target of orchestrator/fuzz runs briefly from the committed
# seeds (VIGIL_FUZZ_SECONDS each, default 20; 0 skips). A nightly toolchain
# gives AddressSanitizer; without one, stable with RUSTC_BOOTSTRAP and no
# sanitizer (still coverage-guided, still panics on a broken property).
fuzz_seconds="${VIGIL_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  log "fuzzing: each target ${fuzz_seconds}s"
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz); sanitizer=address
  else
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz); sanitizer=none
  fi
  (
    cd orchestrator/fuzz
    "${fuzz[@]}" build --dev -s "$sanitizer"
    for t in $("${fuzz[@]}" list); do
      corpus=$(mktemp -d)
      # libFuzzer narrates every new input: keep that out of the log unless
      # the target fails (then its tail shows the crash and the input).
      if "${fuzz[@]}" run --dev -s "$sanitizer" "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=4096 >"$corpus.log" 2>&1; then
        echo "fuzz $t: $(grep -E '^Done' "$corpus.log" || echo done)"
        rm -rf "$corpus" "$corpus.log"
      else
        tail -n 80 "$corpus.log"
        echo "fuzz $t FAILED (crash input under orchestrator/fuzz/artifacts/$t/)"
        exit 1
      fi
    done
  )
fi
