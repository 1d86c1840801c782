#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium through playwright-core (no browser download of its own).
# `npm test` (pretest) and CI run this: it installs the package where the command is missing, as root or with sudo.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "chromium is missing: installing Debian's chromium package for the console's browser tests" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "cannot install chromium without root: run 'apt-get install chromium' as root, then npm test again" >&2
  exit 1
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
