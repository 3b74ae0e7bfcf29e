#!/usr/bin/env bash
# `npm run bench`: raises the open-files limit (10,000 sockets per side), installs the peers into
# bench/node_modules when missing, builds lib + bench into dist/, and runs every scenario.
# BENCH_SCALE=0.1 for a quick run; BENCH_ONLY, BENCH_IMPLS, BENCH_PROFILE=1: see bench/run.ts.
# `npm run bench -- --curves`: scale curves (bench/curves.ts); `-- --soak`: the fleet soak (bench/soak.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

want=30000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
soft=$(ulimit -n)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$want" ]; then ulimit -n "$want" 2>/dev/null || true; fi
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 12000 ]; then
  echo "bench: warning: open files limited to $nofile (hard $hard); 10,000 stations need about 10,200 per process" >&2
fi
export BENCH_NOFILE=$nofile

if ! command -v redis-server >/dev/null; then
  echo "bench: redis-server not found on PATH (apt-get install redis-server)" >&2
  exit 1
fi

if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
  echo "bench: nats-server not found (apt-get install nats-server): ours-nats will fail; BENCH_IMPLS can leave it out" >&2
fi

for package in ocpp-ws-io ocpp-rpc ws ioredis voltlog-io; do
  if [ ! -e "bench/node_modules/$package/package.json" ]; then
    echo "bench: installing the peers into bench/node_modules" >&2
    npm install --prefix bench --no-audit --no-fund >&2
    break
  fi
done

echo "bench: building lib and bench into dist/" >&2
npm run --silent generate:types >&2
npx tsc -p bench/tsconfig.json
case "${1:-}" in
  --curves) exec node dist/bench/curves.js ;;
  --soak) shift; exec node dist/bench/soak.js "$@" ;;
  "") exec node dist/bench/run.js ;;
  *) echo "bench: unknown argument $1 (use --curves or --soak)" >&2; exit 2 ;;
esac
