#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian's packages (the report's browser
# test drives /usr/bin/chromium through /usr/bin/chromedriver with Selenium).
# Idempotent: does nothing when both are present. Needs root (or sudo) and no stdin.
#
#   bash scripts/install-browser.sh
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-browser.sh: needs root or sudo" >&2; exit 1; }
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core; }
if ! apt_install; then
  $SUDO apt-get update -q
  apt_install
fi
dpkg-query -W chromium chromium-driver
