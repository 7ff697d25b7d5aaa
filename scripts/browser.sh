#!/usr/bin/env bash
# Find or provision a Chromium for the browser test (imports/tests/test_browser.py), for `make test`.
# Prints the browser's path on stdout (empty when none can be had, with one line on stderr saying so).
# Order: the system's `chromium`; Playwright's own download; as root with apt-get, Debian's `chromium`.
# ESTATEFLOW_BROWSER_INSTALL=0 skips both installs (an offline machine, a shared one).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
note() { echo "browser: $*" >&2; }

playwright_chromium() {
    # The executable Playwright would launch; printed only when it is really there.
    "$PY" - <<'EOF' 2>/dev/null
import os
from playwright.sync_api import sync_playwright

with sync_playwright() as p:
    path = p.chromium.executable_path
if path and os.path.exists(path):
    print(path)
EOF
}

if path=$(command -v chromium); then
    note "system chromium ($path)"
    echo "$path"
    exit 0
fi
if path=$(playwright_chromium) && [ -n "$path" ]; then
    note "Playwright's chromium ($path)"
    echo "$path"
    exit 0
fi
if [ "${ESTATEFLOW_BROWSER_INSTALL:-1}" = 0 ]; then
    note "no Chromium here and ESTATEFLOW_BROWSER_INSTALL=0: the browser test will be skipped"
    exit 0
fi
if "$PY" -m playwright install chromium >/dev/null 2>&1 && path=$(playwright_chromium) && [ -n "$path" ]; then
    note "Playwright's chromium, downloaded ($path)"
    echo "$path"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    note "installing Debian's chromium (Playwright's download failed)"
    if apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
        && path=$(command -v chromium); then
        echo "$path"
        exit 0
    fi
fi
note "no Chromium (none installed, Playwright's download failed, apt-get unavailable or failed): the browser test will be skipped"
exit 0
