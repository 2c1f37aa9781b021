#!/usr/bin/env bash
# Run tollgate's whole test suite on a fresh Debian machine.
# Installs what the tests need when it is missing (ffmpeg for ffprobe/ffmpeg,
# openssl, redis-server for the fleet store tests, python3 for the
# independent reference of the device method's vectors, chromium, node and
# npm for the console's real-browser test), then runs every test of
# the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg  >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo test --workspace --locked "$@"
