#!/usr/bin/env bash
# Issue 15's check of the serve command: a clean clone of this checkout's HEAD in a temporary
# folder; ./scripts/serve.sh's first start (it installs the runtime into the clone's .venv),
# timed to /ready and stopped; then three restarts with PIP_NO_INDEX=1 inside a network
# namespace that has loopback only (unshare -n, as root), each timed to /ready. Prints the
# times and the load average; the clone is removed at the end.
#   bench/restart.sh            (about 2 minutes with a warm pip cache, 7 without)
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
git clone -q "$repo" "$clone" && cd "$clone"
t0=$(date +%s.%N)
./scripts/serve.sh --port 18801 > "$clone/first.log" 2>&1 &
pid=$!
until curl -sf localhost:18801/ready >/dev/null; do sleep 0.5; if ! kill -0 $pid 2>/dev/null; then echo "first start died"; tail "$clone/first.log"; exit 1; fi; done
echo "first start (install + serve): $(echo "$(date +%s.%N) - $t0" | bc) s"
kill $pid; wait $pid
du -sh .venv
for i in 1 2 3; do
  t0=$(date +%s.%N)
  PIP_NO_INDEX=1 unshare -n bash -c 'ip link set lo up; exec ./scripts/serve.sh --port 18801' > "$clone/restart-$i.log" 2>&1 &
  pid=$!
  # The server is in its own network namespace: probe /ready from inside it.
  until nsenter -t $pid -n curl -sf localhost:18801/ready >/dev/null 2>&1; do sleep 0.2; if ! kill -0 $pid 2>/dev/null; then echo "restart died"; tail "$clone/restart-$i.log"; exit 1; fi; done
  echo "restart $i offline: $(echo "$(date +%s.%N) - $t0" | bc) s; load $(cut -d' ' -f1 /proc/loadavg)"
  kill $pid; wait $pid
done
