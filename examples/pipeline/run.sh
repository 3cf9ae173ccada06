#!/usr/bin/env bash
# The pipeline in five minutes (docs/pipeline.md): an origin repository for the shop
# app, a CI server that polls it, a push, and its build followed live.
#
#   cd examples/pipeline && ./run.sh        (needs steep installed: ./dev demo does it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
steep=${STEEP:-steep}
work=$(mktemp -d)
server=""
finish() {
  [ -z "$server" ] || { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  # the embedded Valkey the CI server started stays up for other processes: stop it
  [ ! -d "$work/ci" ] || (cd "$work/ci" && $steep server --stop > /dev/null 2>&1 || true)
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap finish EXIT

# 1. the app's repository: a bare "origin" and a clone with the shop app in it
git init --quiet --bare --initial-branch=main "$work/origin.git"
git init --quiet --initial-branch=main "$work/shop"
cp "$here"/shop/* "$work/shop/"
cd "$work/shop"
git remote add origin "$work/origin.git"
git add .
git -c user.name=Ada -c user.email=ada@example.com commit --quiet -m "The cart"
git push --quiet origin main

# 2. the CI server: one project, polled every second (no forge needed)
mkdir "$work/ci"
cat > "$work/ci/steep.toml" <<TOML
[pipeline.projects.shop]
repo = "$work/origin.git"
poll = 1
TOML
cd "$work/ci"
port=${PORT:-8512}
$steep pipeline server --port "$port" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/api/pipeline/runs" > /dev/null 2>&1 && break
  sleep 0.1
done

# 3. a push: a change to the cart
cd "$work/shop"
echo "# free shipping soon" >> cart.py
git -c user.name=Ada -c user.email=ada@example.com commit --quiet -am "A comment on shipping"
git push --quiet origin main
sha=$(git rev-parse HEAD)
echo "pushed ${sha:0:12}; waiting for the CI server to see it..."

# 4. its run, followed live (the dashboard shows the same at http://127.0.0.1:$port/pipeline)
cd "$work/ci"
run=""
for _ in $(seq 300); do
  run=$($steep pipeline runs shop --json | python3 -c "
import json, sys
print(next((r['id'] for r in json.load(sys.stdin)['runs'] if r['sha'] == '$sha'), ''))")
  [ -n "$run" ] && break
  sleep 0.1
done
[ -n "$run" ] || { echo "no run of $sha: see $work/server.log"; exit 1; }
echo "run $run:"
$steep pipeline logs "$run" --follow
$steep pipeline show "$run"
