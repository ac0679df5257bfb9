#!/usr/bin/env bash
# Installs what is missing, builds the page and serves it on http://127.0.0.1:8080
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
step "building and serving on http://127.0.0.1:8080 (Ctrl-C to stop)"
exec trunk serve --release
