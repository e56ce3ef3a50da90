#!/usr/bin/env bash
# Vigil's one test command. On a fresh machine it installs what the suite
# needs, finds or starts PostgreSQL, then runs: rustfmt check, clippy
# (-D warnings), every test of the workspace on SQLite and PostgreSQL, the
# README's run command, a schemathesis sweep of the OpenAPI document, and
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

# A one-shot run gains nothing from incremental compilation, which would
# add over a gigabyte to target/ (set CARGO_INCREMENTAL=1 to keep it).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

log() { printf '\n==> %s\n' "$*"; }

# A build that runs out of disk fails deep inside the linker (a bus error):
# say how much room there is first, and refuse clearly below 3 GB.
build_dir="${CARGO_TARGET_DIR:-.}"
[ -d "$build_dir" ] || build_dir=.
free_kb=$(df -Pk "$build_dir" | awk 'NR == 2 {print $4}')
log "disk: $((free_kb / 1024 / 1024)) GB free where the build goes"
if [ "${free_kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "test.sh: less than 3 GB free on $(df -P "$build_dir" | awk 'NR == 2 {print $6}'); a full build needs about 5 GB" >&2
  exit 1
fi

# --- system packages ---------------------------------------------------------
# One list with ./run.sh: scripts/packages.sh.
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
install_test_packages

# --- identity providers for the SSO tests ----------------------------------------
# npm `oidc-provider`, pinned by e2e/idp/oidc/package-lock.json.
if [ ! -d e2e/idp/oidc/node_modules/oidc-provider ]; then
  log "installing the test OpenID Connect provider (npm ci)"
  npm ci --prefix e2e/idp/oidc --no-audit --no-fund --loglevel=error
fi

# axe-core for the browser tests (pinned by e2e/browser/package-lock.json).
if [ ! -f e2e/browser/node_modules/axe-core/axe.min.js ]; then
  log "installing axe-core for the browser tests (npm ci)"
  npm ci --prefix e2e/browser --no-audit --no-fund --loglevel=error
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

# --- the README's run command ---------------------------------------------------
# As a newcomer runs it: the command of the README's Run section, extracted
# (not copied), with VIGIL_LISTEN and VIGIL_DATA_DIR pointing at a free port
# and a fresh directory, until /readyz answers and the demo tenant's cases
# are listed by its analyst_read account (a password login); then it is
# stopped with SIGTERM and must exit. VIGIL_SKIP_RUN_CHECK=1 skips it.
if [ "${VIGIL_SKIP_RUN_CHECK:-0}" != 1 ]; then
  run_cmd=$(awk '/<!-- run-command/ {f = 1; next} f && /^```/ {if (g) exit; g = 1; next} g {print}' README.md)
  [ -n "$run_cmd" ] || { echo "README.md has no run command (<!-- run-command --> before a code block)"; exit 1; }
  log "the README's run command: $run_cmd"
  port=18080
  while port_open "$port"; do port=$((port + 1)); done
  run_dir=$(mktemp -d /tmp/vigil-run.XXXXXX)
  VIGIL_LISTEN="127.0.0.1:$port" VIGIL_DATA_DIR="$run_dir/data" setsid bash -c "$run_cmd" >"$run_dir/out" 2>&1 &
  run_pid=$!
  stop_run() { kill -TERM -- "-$run_pid" 2>/dev/null || true; }
  run_failed() { tail -n 60 "$run_dir/out"; echo "README run command: $*"; stop_run; exit 1; }
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 1800); do
    curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || run_failed "exited before /readyz answered"
    sleep 1
  done
  curl -fsS -o /dev/null "$base/readyz" || run_failed "/readyz did not answer within 30 minutes"
  password=$(awk '$1 == "analyst_read" {print $3; exit}' "$run_dir/out")
  [ -n "$password" ] || run_failed "the demo printed no analyst_read account"
  status=$(curl -sS -o /dev/null -w '%{http_code}' -c "$run_dir/jar" \
    --data-urlencode "email=analyst-read@demo.vigil.test" --data-urlencode "password=$password" "$base/login")
  [ "$status" = 303 ] || run_failed "the demo analyst's login answered $status"
  cases=$(curl -fsS -b "$run_dir/jar" "$base/api/v1/cases") || run_failed "GET /api/v1/cases failed"
  total=$(printf '%s' "$cases" | python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])')
  [ "$total" -ge 1 ] || run_failed "the demo tenant lists no case: $cases"
  echo "run command: /readyz answered, the demo analyst lists $total cases"
  stop_run
  for _ in $(seq 1 60); do kill -0 "$run_pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$run_pid" 2>/dev/null; then kill -KILL -- "-$run_pid"; run_failed "did not stop on SIGTERM"; fi
  rm -rf "$run_dir"
fi

# --- the hostile sweep ------------------------------------------------------------
# schemathesis (pinned, in a venv under target/) against Vigil's own OpenAPI
# document, as each tenant role's API token and the admins' MFA-verified
# sessions, on `vigil demo`: no server
# error, no undocumented status or content type, no response outside its
# schema, no invalid request accepted. SWEEP_EXAMPLES (default 5) sets the
# budget; VIGIL_SKIP_SWEEP=1 skips it.
if [ "${VIGIL_SKIP_SWEEP:-0}" != 1 ]; then
  log "the hostile sweep (schemathesis, ${SWEEP_EXAMPLES:-5} examples per operation)"
  bash scripts/sweep.sh
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
