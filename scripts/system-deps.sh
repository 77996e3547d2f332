#!/usr/bin/env bash
# Installs the Debian packages Wharf needs when they are missing and we run as root:
#   run  - what `make run` needs (python-ldap's build dependencies, Node.js/npm, the registry, notary)
#   test - plus what the test suite drives for real (slapd, ldap-utils, chromium, rpm for the scanner's fixtures,
#          libfaketime to set celery beat's clock a few seconds before a crontab's minute)
# As a non-root user it only reports what is missing.
set -euo pipefail
mode=${1:-run}
packages=(libldap2-dev libsasl2-dev python3-venv python3-dev gcc npm docker-registry notary)
if [ "$mode" = test ]; then
  packages+=(slapd ldap-utils chromium docker.io busybox-static skopeo rpm libfaketime)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A Node.js/npm from elsewhere (nvm, nodesource) is as good as Debian's.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
# A Python built outside Debian (pyenv) brings its own venv and headers.
if python3 -c 'import venv, sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
  missing=("${missing[@]/python3-dev}")
fi
read -r -a missing <<< "${missing[*]:-}"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
