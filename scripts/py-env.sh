#!/usr/bin/env bash
# A Python virtual environment with the reference readers the dataset and metrics
# tests use (tests/py/requirements.txt, pinned), made once and reused; prints its
# python. Installs Debian's python3-venv if venv cannot make an environment.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/py/requirements.txt
venv="${EPROF_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/eprof/py-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3)" || { echo "python3 is required (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
rm -rf "$venv"
if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
  rm -rf "$venv"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >&2
  "$py" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
