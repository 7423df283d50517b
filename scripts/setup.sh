#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages (Debian's prometheus,
# which brings promtool, and nats-server) when missing, then the virtualenv and Python packages.
# Every make target calls it; a second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have promtool || missing+=(prometheus)
have prometheus || missing+=(prometheus)
have nats-server || missing+=(nats-server)
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: $packages"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  $sudo apt-get install -y --no-install-recommends $packages \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $packages; }
fi

"$PYTHON" - <<'PY' || { echo "setup: obslib needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# The Python packages come from the lock (exact versions, checked against their hashes), the
# project itself without dependencies. LOCK=requirements-lab.lock adds JupyterLab, and stays the
# virtualenv's lock until another LOCK is given. The stamp keys on pyproject.toml and the lock,
# so a refreshed lock (`make lock`) re-installs.
stamp="$VENV/.obslib-installed"
previous=$(cut -d' ' -f1 "$stamp" 2>/dev/null || true)
case $previous in *.lock) ;; *) previous="" ;; esac  # a stamp from before the locks
LOCK=${LOCK:-${previous:-requirements.lock}}
[ -f "$LOCK" ] || { echo "setup: no $LOCK here; \`make lock\` writes it" >&2; exit 1; }
want=$(cat pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)
want="$LOCK $want"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the Python packages of $LOCK into $VENV"
  "$VENV/bin/python" -m pip install --quiet --require-hashes -r "$LOCK"
  # Remove whatever the lock does not name (left by an earlier install), so the virtualenv
  # holds exactly the locked versions; it removes the project too, installed again below.
  "$VENV/bin/pip-sync" --quiet "$LOCK"
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi
