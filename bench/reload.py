#!/usr/bin/env python3
"""
reload.py: the reload benchmark. wrk hammers "hello" on keep-alive
connections for BENCH_RELOAD_DURATION seconds against a server with 2
workers while the master gets a HUP every second; moonpool and nginx+lua
run one after the other in the same invocation. Reports per server: total
requests, errors (wrk's socket errors plus non-2xx answers) and the
throughput dip (the worst one-second bucket against the median one).

    python3 bench/reload.py            # both servers, 20 s each
    BENCH_RELOAD_DURATION=5 BENCH_SERVERS=moonpool python3 bench/reload.py

Environment: MOONPOOL_BIN (default build/moonpool), NGINX_BIN (nginx),
NGINX_MODULES (/usr/lib/nginx/modules), BENCH_CONNECTIONS (50),
BENCH_RELOAD_DURATION (20), BENCH_SERVERS ("moonpool nginx"). Servers
listen on 127.0.0.1 only; every loop is bounded by the duration.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)

# wrk counts answers per wall-clock second in each thread; done() merges
# the threads' buckets and prints them as one JSON line.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) buckets = {} end
function response(status, headers, body)
  local s = os.time()
  buckets[s] = (buckets[s] or 0) + 1
end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("buckets")) do all[s] = (all[s] or 0) + n end
  end
  local parts = {}
  for s, n in pairs(all) do parts[#parts + 1] = '"' .. s .. '":' .. n end
  io.write("BUCKETS {" .. table.concat(parts, ",") .. "}\n")
end
"""


def env(name, default):
    return os.environ.get(name) or default


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


def start_moonpool(d, port):
    conf = os.path.join(d, "moonpool.yaml")
    with open(conf, "w") as f:
        f.write("cluster:\n  workers: 2\n  pid_file: %s/moonpool.pid\n"
                "  shutdown_timeout: 10s\n"
                "log:\n  error: %s/moonpool-error.log\n  level: notice\n"
                "servers:\n  - listen: [\"127.0.0.1:%d\"]\n"
                "    locations:\n      - match: /\n"
                "        content: |\n          ngx.say(\"hello\")\n"
                % (d, d, port))
    binary = env("MOONPOOL_BIN", os.path.join(SRC, "build", "moonpool"))
    return subprocess.Popen([binary, "-c", conf], cwd=d,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "moonpool.stderr"),
                                        "wb"))


def start_nginx(d, port):
    mods = env("NGINX_MODULES", "/usr/lib/nginx/modules")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
load_module %(mods)s/ndk_http_module.so;
load_module %(mods)s/ngx_http_lua_module.so;
worker_processes 2;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log notice;
events { worker_connections 10240; }
http {
    access_log off;
    lua_package_path "/usr/share/lua/5.1/?.lua;;";
    server {
        listen 127.0.0.1:%(port)d;
        location / { content_by_lua_block { ngx.say("hello") } }
    }
}
""" % {"mods": mods, "d": d, "port": port})
    return subprocess.Popen([env("NGINX_BIN", "nginx"), "-p", d, "-c", conf,
                             "-g", "daemon off;"], cwd=d,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "nginx.stderr"),
                                        "wb"))


def parse(out):
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    m = re.search(r"^BUCKETS (\{.*\})$", out, re.M)
    buckets = sorted(json.loads(m.group(1)).items()) if m else []
    # the first and last seconds are partial
    per_sec = [n for _, n in buckets[1:-1]]
    return total, errors, per_sec


def run_one(name, duration, conns):
    d = tempfile.mkdtemp(prefix="moonpool-reload-bench-")
    port = free_port()
    proc = (start_moonpool if name == "moonpool" else start_nginx)(d, port)
    try:
        wait_port(port, proc)
        script = os.path.join(d, "buckets.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c%d" % conns, "-d%ds" % duration, "-s", script,
             "http://127.0.0.1:%d/" % port],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        hups = 0
        end = time.monotonic() + duration - 1
        while time.monotonic() < end and wrk.poll() is None:
            time.sleep(1)
            os.kill(proc.pid, signal.SIGHUP)
            hups += 1
        out = wrk.communicate(timeout=duration + 30)[0].decode()
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    total, errors, per_sec = parse(out)
    shutil.rmtree(d, ignore_errors=True)
    med = sorted(per_sec)[len(per_sec) // 2] if per_sec else 0
    low = min(per_sec) if per_sec else 0
    return {"server": name, "hups": hups, "requests": total,
            "errors": errors, "rps_median": med, "rps_min": low,
            "dip_pct": round(100.0 * (med - low) / med, 1) if med else 0.0}


def main():
    duration = int(env("BENCH_RELOAD_DURATION", "20"))
    conns = int(env("BENCH_CONNECTIONS", "50"))
    rows = []
    for name in env("BENCH_SERVERS", "moonpool nginx").split():
        rows.append(run_one(name, duration, conns))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print("| server | HUPs | requests | errors | median req/s | worst "
          "second | dip |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %(server)s | %(hups)d | %(requests)d | %(errors)d | "
              "%(rps_median)d | %(rps_min)d | %(dip_pct).1f%% |" % r)


if __name__ == "__main__":
    main()
