#!/usr/bin/env python3
"""Shared-dict micro benchmark (issue 3): inside one request, 1,000,000
`set` then 1,000,000 `get` over 1,000 keys, with pre-built keys and with keys
built with `..` each time; the same Lua on moonpool and on nginx +
lua-nginx-module (lua-resty-core's FFI path), both pinned to one CPU, in
interleaved rounds. Prints ns/op and the moonpool/nginx ratios as Markdown.

    bench/shdict_micro.py [ROUNDS]        (default 3)

Environment: MOONPOOL_BIN (default build/moonpool), BENCH_SERVER_CPU (1).
Standard library only.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("MOONPOOL_BIN", os.path.join(ROOT, "build", "moonpool"))
CPU = os.environ.get("BENCH_SERVER_CPU", "1")
MODS = os.environ.get("NGINX_MODULES", "/usr/lib/nginx/modules")

LUA = r"""
local d = ngx.shared.bench
local N, K = 1000000, 1000
local keys = {}
for i = 1, K do keys[i] = "key" .. i end
local function now() ngx.update_time() return ngx.now() end
local t0 = now()
for i = 1, N do d:set(keys[i % K + 1], i) end
local t1 = now()
for i = 1, N do local v = d:get(keys[i % K + 1]) end
local t2 = now()
for i = 1, N do d:set("key" .. (i % K + 1), i) end
local t3 = now()
for i = 1, N do local v = d:get("key" .. (i % K + 1)) end
local t4 = now()
ngx.say(string.format('{"set": %.1f, "get": %.1f, "set_concat": %.1f, '
                      .. '"get_concat": %.1f}', (t1 - t0) * 1e9 / N,
                      (t2 - t1) * 1e9 / N, (t3 - t2) * 1e9 / N,
                      (t4 - t3) * 1e9 / N))
"""

OPS = ("set", "get", "set_concat", "get_concat")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def indent(code, n):
    return "".join(" " * n + line + "\n" for line in code.strip().split("\n"))


def moonpool_conf(d, port):
    path = os.path.join(d, "moonpool.yaml")
    with open(path, "w") as f:
        f.write("cluster: {workers: 1, pid_file: %s}\n"
                % json.dumps(os.path.join(d, "mp.pid")))
        f.write("log: {error: %s, level: warn}\n"
                % json.dumps(os.path.join(d, "mp-error.log")))
        f.write("shared_dicts: {bench: 10m}\n")
        f.write("servers:\n  - listen: [\"127.0.0.1:%d\"]\n" % port)
        f.write("    locations:\n      - match: \"= /micro\"\n")
        f.write("        content: |\n" + indent(LUA, 10))
    return [BIN, "-c", path]


def nginx_conf(d, port):
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write("daemon off;\nmaster_process on;\nworker_processes 1;\n")
        f.write("pid %s;\nerror_log %s warn;\n"
                % (os.path.join(d, "ngx.pid"), os.path.join(d, "ngx-error.log")))
        f.write("load_module %s/ndk_http_module.so;\n" % MODS)
        f.write("load_module %s/ngx_http_lua_module.so;\n" % MODS)
        f.write("events { worker_connections 64; }\nhttp {\n")
        f.write("  access_log off;\n")
        f.write('  lua_package_path "/usr/share/lua/5.1/?.lua;;";\n')
        f.write("  lua_shared_dict bench 10m;\n")
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            f.write("  %s_temp_path %s;\n" % (sub, os.path.join(d, sub)))
        f.write("  server {\n    listen 127.0.0.1:%d;\n" % port)
        f.write("    location = /micro {\n      content_by_lua_block {\n")
        f.write(indent(LUA, 8) + "      }\n    }\n  }\n}\n")
    return ["nginx", "-p", d, "-c", path]


def wait_port(proc, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("server exited with %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("port %d not ready" % port)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    d = tempfile.mkdtemp(prefix="shdict-micro-")
    servers = {}
    try:
        for name, make in (("moonpool", moonpool_conf), ("nginx", nginx_conf)):
            port = free_port()
            cmd = ["taskset", "-c", CPU] + make(d, port)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            servers[name] = (proc, port)
            wait_port(proc, port)
        res = {name: {op: [] for op in OPS} for name in servers}
        for rnd in range(rounds):
            order = list(servers) if rnd % 2 == 0 else list(servers)[::-1]
            for name in order:
                url = "http://127.0.0.1:%d/micro" % servers[name][1]
                with urllib.request.urlopen(url, timeout=120) as r:
                    got = json.loads(r.read())
                for op in OPS:
                    res[name][op].append(got[op])
                print("round %d %-8s %s" % (rnd + 1, name, got),
                      file=sys.stderr)
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGQUIT)
        for proc, _ in servers.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    med = {n: {op: statistics.median(v) for op, v in ops.items()}
           for n, ops in res.items()}
    print("| ns/op (median of %d) | %s |" % (rounds, " | ".join(OPS)))
    print("|---|" + "---|" * len(OPS))
    for name in ("moonpool", "nginx"):
        print("| %s | %s |" % (name, " | ".join("%.1f" % med[name][op]
                                               for op in OPS)))
    print("| moonpool/nginx | %s |" % " | ".join(
        "%.2fx" % (med["moonpool"][op] / med["nginx"][op]) for op in OPS))


if __name__ == "__main__":
    main()
