# The system packages Vigil needs, in one place: sourced by ./run.sh (the
# build) and ./test.sh (the build and the test peers), so the two lists
# cannot drift. Debian/Ubuntu package names.

# To build Vigil: OpenSSL and pkg-config for the TLS and crypto crates;
# samael's xmlsec binding (SAML signatures) needs the xmlsec and libxml2
# headers and libclang for bindgen.
BUILD_PACKAGES=(pkg-config libssl-dev libxmlsec1-dev libxml2-dev libclang-dev)

# The test peers: the SAML IdP (simplesamlphp, run with `php -S`), the
# PostgreSQL server binaries (a throwaway cluster; the e2e test that
# restarts a cluster of its own), Node.js for the OpenID Connect provider
# and axe-core, Debian's Chromium and its WebDriver for the browser tests.
TEST_PACKAGES=(simplesamlphp php-cli php-xml php-mbstring chromium chromium-driver)

apt_missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
require_pkg() { for p in "$@"; do have_pkg "$p" || apt_missing+=("$p"); done; }
apt_install() {
  [ "${#apt_missing[@]}" -eq 0 ] && return 0
  printf '\n==> installing Debian packages: %s\n' "${apt_missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
  apt_missing=()
}

# Installs what the build needs (a no-op where dpkg is not the package
# manager: install the same libraries by their names there).
install_build_packages() {
  command -v dpkg-query >/dev/null || return 0
  require_pkg "${BUILD_PACKAGES[@]}"
  apt_install
}

# Installs what the build and the tests need.
install_test_packages() {
  command -v dpkg-query >/dev/null || return 0
  require_pkg "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || require_pkg postgresql
  # Node.js brings npm where it comes from NodeSource; Debian's needs both.
  command -v node >/dev/null || require_pkg nodejs
  command -v npm >/dev/null || require_pkg npm
  # Python's venv for the schemathesis sweep (Debian's python3 lacks it).
  python3 -c 'import ensurepip, venv' 2>/dev/null || require_pkg python3-venv
  apt_install
}
