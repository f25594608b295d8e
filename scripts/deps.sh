#!/usr/bin/env bash
# Install the Debian packages shmstat needs to build, test and run its demo.
# Installs only what is missing; does nothing (and needs no network) when
# everything is there. Run as root, or with sudo available.
set -euo pipefail

packages=(
	gcc g++ clang pkg-config meson ninja-build
	libxxhash-dev libbsd-dev liburcu-dev libhiredis-dev
	libcmocka-dev libbenchmark-dev libglib2.0-dev libmicrohttpd-dev
	# rediss:// (bridge/tls.c)
	libssl-dev
	redis-server redis-tools redis-sentinel libncurses-dev
	# The tests: promtool checks the alert rules, curl follows the tour.
	prometheus curl
	# The bridge tests run a bridge and the tool with skewed clocks.
	faketime
	# shmstat-bridge's readiness (Type=notify); systemd-analyze verify.
	libsystemd-dev systemd
	# The Debian packages (debian/, .ci/run): dpkg-buildpackage, lintian.
	debhelper dpkg-dev lintian
	python3-dev python3-mesonpy python3-pytest gunicorn python3-flask
	python3-prometheus-client python3-redis apache2-utils
	python3-starlette python3-httpx python3-fastapi python3-uvicorn
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis-server (and a prometheus) on install; the
# tests and the demo run their own Redis on private sockets and only need
# promtool, so neither service is needed.
