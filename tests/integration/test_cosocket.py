"""
Cosockets (ngx.socket.tcp / udp / connect) against real peers.

Peers started by the test, all on 127.0.0.1: a real redis-server (Debian
package; stopped by pid), a scripted TCP server (each connection sends one
command line: "silent" never answers, "drip <n> <ms> <text>" answers a
byte at a time, "send <text>" answers and closes, "echo" echoes lines,
"half <text>" answers then keeps the connection open), a UDP echo server,
a tiny DNS server (NXDOMAIN for everything but "peer.test", which is
127.0.0.1: no query leaves the machine), and `openssl s_server` with a
certificate signed by a CA the test generates.

The expected outputs in CASES were produced by running the same Lua on
Debian's nginx 1.22.1 + libnginx-mod-http-lua 0.10.23 + lua-resty-core
(`python3 test_cosocket.py --nginx` prints them), so results, error strings
and partial data are OpenResty's. Error-log lines OpenResty writes for
socket errors (lua_socket_log_errors) are written here too and declared.

Run alone: MOONPOOL_BIN=build/moonpool python3 -m unittest test_cosocket
"""

import os
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import Server, free_port

REDIS = shutil.which("redis-server")
OPENSSL = shutil.which("openssl")

# --------------------------------------------------------------- peers


class ScriptedHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(10)
        buf = b""
        try:
            while b"\n" not in buf:
                d = sock.recv(4096)
                if not d:
                    return
                buf += d
        except OSError:
            return
        line, rest = buf.split(b"\n", 1)
        words = line.decode("latin-1").split(" ", 3)
        cmd = words[0]
        try:
            if cmd == "silent":
                time.sleep(float(words[1]) if len(words) > 1 else 5)
            elif cmd == "drip":
                n, ms, text = int(words[1]), int(words[2]), words[3]
                data = text.encode("latin-1").decode("unicode_escape")
                for i in range(0, len(data), n):
                    sock.sendall(data[i:i + n].encode("latin-1"))
                    time.sleep(ms / 1000.0)
                time.sleep(0.5)
            elif cmd == "send":
                text = line.decode("latin-1")[5:]
                sock.sendall(text.encode("latin-1").decode(
                    "unicode_escape").encode("latin-1"))
            elif cmd == "half":
                text = line.decode("latin-1")[5:]
                sock.sendall(text.encode("latin-1").decode(
                    "unicode_escape").encode("latin-1"))
                time.sleep(5)
            elif cmd == "echo":
                while True:
                    while b"\n" in rest:
                        l, rest = rest.split(b"\n", 1)
                        sock.sendall(l + b"\n")
                    d = sock.recv(4096)
                    if not d:
                        return
                    rest += d
        except OSError:
            pass


class ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class UDPEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(b"echo:" + data, self.client_address)


class ThreadingUDP(socketserver.ThreadingUDPServer):
    daemon_threads = True


class FakeDNS(socketserver.BaseRequestHandler):
    """A-record answers for peer.test; NXDOMAIN for any other name."""

    def handle(self):
        data, sock = self.request
        if len(data) < 12:
            return
        tid = data[:2]
        q = data[12:]
        labels, i = [], 0
        while i < len(q) and q[i] != 0:
            labels.append(q[i + 1:i + 1 + q[i]].decode("latin-1"))
            i += 1 + q[i]
        question = q[:i + 5]
        name = ".".join(labels).lower()
        if name == "peer.test":
            hdr = tid + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
            ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + \
                socket.inet_aton("127.0.0.1")
            sock.sendto(hdr + question + ans, self.client_address)
        else:
            hdr = tid + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0)
            sock.sendto(hdr + question, self.client_address)


def start_thread_server(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return server


class Peers:
    """Every peer a test needs; start() once, stop() at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="moonpool-cosock-")
        self.procs = []

    def start(self):
        self.tcp = start_thread_server(
            ThreadingTCP(("127.0.0.1", 0), ScriptedHandler))
        self.tcp_port = self.tcp.server_address[1]
        self.udp = start_thread_server(
            ThreadingUDP(("127.0.0.1", 0), UDPEcho))
        self.udp_port = self.udp.server_address[1]
        self.dns = start_thread_server(
            ThreadingUDP(("127.0.0.1", 0), FakeDNS))
        self.dns_port = self.dns.server_address[1]
        self.closed_port = free_port()
        self.unix_path = os.path.join(self.dir, "echo.sock")
        self.unix = socketserver.ThreadingUnixStreamServer(
            self.unix_path, ScriptedHandler)
        self.unix.daemon_threads = True
        start_thread_server(self.unix)
        self.redis_port = None
        if REDIS:
            self.redis_port = free_port()
            self.procs.append(subprocess.Popen(
                [REDIS, "--port", str(self.redis_port), "--bind",
                 "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(self.redis_port)
        self.tls_port = None
        if OPENSSL:
            self.make_certs()
            self.tls_port = free_port()
            self.procs.append(subprocess.Popen(
                [OPENSSL, "s_server", "-quiet", "-accept",
                 "127.0.0.1:%d" % self.tls_port, "-cert", self.cert,
                 "-key", self.key, "-rev"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=self.dir))
            self.tls_self_port = free_port()
            self.procs.append(subprocess.Popen(
                [OPENSSL, "s_server", "-quiet", "-accept",
                 "127.0.0.1:%d" % self.tls_self_port, "-cert",
                 self.self_cert, "-key", self.self_key, "-rev"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=self.dir))
            wait_port(self.tls_port)
            wait_port(self.tls_self_port)
        return self

    def make_certs(self):
        d = self.dir

        def run(*args):
            subprocess.run([OPENSSL] + list(args), cwd=d, check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key",
            "-out", "srv.csr", "-subj", "/CN=peer.test")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:peer.test,DNS:localhost\n")
        run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-out", "srv.pem",
            "-extfile", "ext.cnf")
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "self.key", "-out", "self.pem", "-subj",
            "/CN=peer.test")
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "srv.pem")
        self.key = os.path.join(d, "srv.key")
        self.self_cert = os.path.join(d, "self.pem")
        self.self_key = os.path.join(d, "self.key")

    def vars(self):
        """Lua globals the cases use, as a chunk for lua.init."""
        return ("TCP_PORT = %d\nUDP_PORT = %d\nCLOSED_PORT = %d\n"
                "REDIS_PORT = %s\nTLS_PORT = %s\nTLS_SELF_PORT = %s\n"
                "UNIX_PATH = %r\n" % (
                    self.tcp_port, self.udp_port, self.closed_port,
                    self.redis_port or "nil", self.tls_port or "nil",
                    getattr(self, "tls_self_port", None) or "nil",
                    self.unix_path))

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s in (self.tcp, self.udp, self.dns, self.unix):
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# --------------------------------------------------------------- Lua

INIT = r'''
local function pack(...) return {n = select("#", ...), ...} end
local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  -- an SSL session: cdata on OpenResty (lua-resty-core), userdata here
  if type(v) == "userdata" or type(v) == "cdata" then return "session" end
  return tostring(v)
end
-- show(f): "[n] v1, v2" for what f returned, "!! msg" for what it raised
function show(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] then
    ngx.say("!! ", (tostring(r[2]):gsub("^[^:]*:%d+: ", "")))
    return
  end
  local t = {}
  for i = 2, r.n do t[#t + 1] = fmt(r[i]) end
  ngx.say("[", r.n - 1, "] ", table.concat(t, ", "))
end
function peer(cmd, timeout)
  local s = ngx.socket.tcp()
  s:settimeout(timeout or 2000)
  assert(s:connect("127.0.0.1", TCP_PORT))
  assert(s:send(cmd .. "\n"))
  return s
end
-- a RESP client small enough to read at a glance
function redis_cmd(...)
  local args = {...}
  local t = {"*", #args, "\r\n"}
  for _, a in ipairs(args) do
    a = tostring(a)
    t[#t + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return t
end
function redis_read(s)
  local line, err = s:receive()
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" or kind == "-" or kind == ":" then return kind .. rest end
  if kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return "(nil)" end
    local data = s:receive(n + 2)
    return data:sub(1, n)
  end
  return nil, "unsupported reply " .. line
end
'''

# name: (Lua, expected output on OpenResty)
CASES = {
    "redis_ping_set_get": (r"""
local s = ngx.socket.tcp()
s:settimeout(2000)
show(s.connect, s, "127.0.0.1", REDIS_PORT)
show(s.send, s, redis_cmd("PING"))
show(redis_read, s)
s:send(redis_cmd("SET", "k", "v1\r\nv2"))
show(redis_read, s)
s:send(redis_cmd("GET", "k"))
show(redis_read, s)
s:send(redis_cmd("GET", "missing"))
show(redis_read, s)
show(s.close, s)
show(s.close, s)
""", '[1] 1\n[1] 14\n[1] "+PONG"\n[1] "+OK"\n[1] "v1\\13\\\nv2"\n[1] "(nil)"\n[1] 1\n[2] nil, "closed"\n'),
    "redis_pipeline": (r"""
local s = ngx.socket.connect("127.0.0.1", REDIS_PORT)
local t = {redis_cmd("SET", "p", "1"), redis_cmd("INCR", "p"),
           redis_cmd("INCR", "p"), redis_cmd("GET", "p")}
show(s.send, s, t)
for i = 1, 4 do show(redis_read, s) end
show(s.setkeepalive, s)
""", '[1] 89\n[1] "+OK"\n[1] ":2"\n[1] ":3"\n[1] "3"\n[1] 1\n'),
    "keepalive_reuse": (r"""
for i = 1, 3 do
  local s = ngx.socket.tcp()
  s:connect("127.0.0.1", REDIS_PORT, {pool = "ka-test"})
  show(s.getreusedtimes, s)
  s:send(redis_cmd("PING"))
  redis_read(s)
  show(s.setkeepalive, s, 10000, 5)
  show(s.getreusedtimes, s)
  show(s.send, s, "x")
end
local s = ngx.socket.tcp()
s:connect("127.0.0.1", REDIS_PORT, {pool = "ka-other"})
show(s.getreusedtimes, s)
s:send("PING\r\nPING\r\n")
ngx.sleep(0.05)
show(s.receive, s)
show(s.setkeepalive, s)
show(s.close, s)
""", '[1] 0\n[1] 1\n[2] nil, "closed"\n[2] nil, "closed"\n[1] 1\n[1] 1\n[2] nil, "closed"\n[2] nil, "closed"\n[1] 2\n[1] 1\n[2] nil, "closed"\n[2] nil, "closed"\n[1] 0\n[1] "+PONG"\n[2] nil, "unread data in buffer"\n[1] 1\n'),
    "connect_refused": (r"""
local s = ngx.socket.tcp()
show(s.connect, s, "127.0.0.1", CLOSED_PORT)
show(s.send, s, "x")
show(s.receive, s)
show(ngx.socket.connect, "127.0.0.1", CLOSED_PORT)
""", '[2] nil, "connection refused"\n[2] nil, "closed"\n[2] nil, "closed"\n[2] nil, "connection refused"\n'),
    "bad_args": (r"""
local s = ngx.socket.tcp()
show(s.connect, s, "127.0.0.1", 70000)
show(s.connect, s, "127.0.0.1")
show(s.connect, s, "127.0.0.1", TCP_PORT, {pool = {}})
show(s.connect, s, "127.0.0.1", TCP_PORT, {pool_size = 0})
show(s.connect, s, "127.0.0.1", TCP_PORT, {backlog = -1})
s:connect("127.0.0.1", TCP_PORT)
show(s.receive, s, "x")
show(s.receive, s, "*x")
show(s.receive, s, -1)
show(s.receive, s, {})
show(s.receiveuntil, s, "")
show(s.send, s, print)
show(s.send, s, {"a", true})
show(s.settimeout, s, -1)
show(s.setoption, s, "foo", 1)
show(s.receiveany, s, 0)
show(s.receiveany, s, "x")
show(ngx.socket.tcp, 1)
s:close()
""", '[2] nil, "bad port number: 70000"\n[2] nil, "missing the port number"\n!! bad argument #4 to \'?\' (bad "pool" option type: table)\n!! bad argument #4 to \'?\' (bad "pool_size" option value: 0)\n!! bad argument #4 to \'?\' (bad "backlog" option value: -1)\n!! bad argument #2 to \'?\' (bad pattern argument: x)\n!! bad argument #2 to \'?\' (bad pattern argument)\n!! bad argument #2 to \'?\' (bad pattern argument)\n!! bad argument #2 to \'?\' (bad pattern argument)\n[2] nil, "pattern is empty"\n!! bad argument #2 to \'?\' (string, number, boolean, nil, or array table expected, got function)\n!! bad argument #2 to \'?\' (bad data type boolean found)\n!! bad timeout value\n[2] nil, "unsupported option foo"\n!! bad argument #2 to \'?\' (bad max argument)\n!! bad argument #2 to \'?\' (bad max argument)\n!! expecting zero arguments, but got 1\n'),
    "receive_line": (r"""
local s = peer("send a\\r\\nb\\r\\r\\nc\\rd\\n\\nlast")
for i = 1, 5 do show(s.receive, s) end
show(s.receive, s)
show(s.receive, s, "*l")
""", '[1] "a"\n[1] "b"\n[1] "cd"\n[1] ""\n[3] nil, "closed", "last"\n[2] nil, "closed"\n[2] nil, "closed"\n'),
    "receive_size": (r"""
local s = peer("send 0123456789")
show(s.receive, s, 4)
show(s.receive, s, 0)
show(s.receive, s, "2")
show(s.receive, s, 10)
show(s.receive, s, 1)
""", '[1] "0123"\n[1] ""\n[1] "45"\n[3] nil, "closed", "6789"\n[2] nil, "closed"\n'),
    "receive_all": (r"""
local s = peer("send hello\\nworld")
show(s.receive, s, 2)
show(s.receive, s, "*a")
show(s.receive, s, "*a")
show(s.receive, s)
""", '[1] "he"\n[1] "llo\\\nworld"\n[1] ""\n[3] nil, "closed", ""\n'),
    "receiveany": (r"""
local s = peer("send abcdef")
ngx.sleep(0.1)
show(s.receiveany, s, 3)
show(s.receiveany, s, 100)
show(s.receiveany, s, 10)
""", '[1] "abc"\n[1] "def"\n[3] nil, "closed", ""\n'),
    "receiveuntil": (r"""
local s = peer("drip 3 5 x--ab--a--abc-ab--abtail")
local r = s:receiveuntil("--ab")
show(r)
show(r)
show(r)
show(r)
show(r)
""", '[1] "x"\n[1] "--a"\n[1] "c-ab"\n[3] nil, "closed", "tail"\n[2] nil, "closed"\n'),
    "receiveuntil_size": (r"""
local s = peer("drip 2 5 0123456789--XYab--XY--XYend")
local r = s:receiveuntil("--XY")
for i = 1, 12 do show(r, 3) end
""", '[1] "012"\n[1] "345"\n[1] "678"\n[1] "9"\n[3] nil, nil, nil\n[1] "ab"\n[3] nil, nil, nil\n[1] ""\n[3] nil, nil, nil\n[1] "end"\n[3] nil, "closed", ""\n[2] nil, "closed"\n'),
    "receiveuntil_inclusive": (r"""
local s = peer("send a==b==c")
local r = s:receiveuntil("==", {inclusive = true})
show(r)
show(r)
show(r)
show(s.receiveuntil, s, "x", {inclusive = 1})
""", '[1] "a=="\n[1] "b=="\n[3] nil, "closed", "c"\n!! bad "inclusive" option value type: number\n'),
    "read_timeout_partial": (r"""
local s = peer("drip 1 150 abc\\ndef")
s:settimeout(100)
show(s.receive, s)
show(s.receive, s)
s:settimeout(1000)
show(s.receive, s)
show(s.receive, s, 10)
""", '[3] nil, "timeout", "a"\n[3] nil, "timeout", "b"\n[1] "c"\n[3] nil, "closed", "def"\n'),
    "closed_socket": (r"""
local s = ngx.socket.tcp()
show(s.send, s, "x")
show(s.receive, s)
show(s.getreusedtimes, s)
show(s.setkeepalive, s)
show(s.close, s)
show(s.sslhandshake, s)
show(s.setoption, s, "keepalive", true)
show(function() return type(s:receiveuntil("x")) end)
""", '[2] nil, "closed"\n[2] nil, "closed"\n[2] nil, "closed"\n[2] nil, "closed"\n[2] nil, "closed"\n!! socket is never created nor connected\n!! socket is never created nor connected\n[1] "function"\n'),
    "dns": (r"""
local s = ngx.socket.tcp()
show(s.connect, s, "nowhere.invalid", 80)
show(s.connect, s, "peer.test", TCP_PORT)
show(s.send, s, "send resolved\n")
show(s.receive, s, "*a")
show(s.close, s)
show(s.close, s)
""", '[2] nil, "nowhere.invalid could not be resolved (3: Host not found)"\n[1] 1\n[1] 14\n[1] "resolved"\n[1] 1\n[2] nil, "closed"\n'),
    "unix": (r"""
local s = ngx.socket.tcp()
show(s.connect, s, "unix:" .. UNIX_PATH)
show(s.send, s, "send over unix")
show(s.send, s, "\n")
show(s.receive, s, "*a")
show(s.connect, s, "unix:/nonexistent/x.sock")
""", '[1] 1\n[1] 14\n[1] 1\n[1] "over unix"\n[2] nil, "no such file or directory"\n'),
    "tls": (r"""
local s = ngx.socket.tcp()
s:settimeout(3000)
show(s.connect, s, "127.0.0.1", TLS_PORT)
show(s.sslhandshake, s, nil, "peer.test", true)
show(s.send, s, "hello\n")
show(s.receive, s)
s:close()
s:connect("127.0.0.1", TLS_PORT)
show(s.sslhandshake, s, false, "peer.test", true)
s:close()
s:connect("127.0.0.1", TLS_PORT)
show(s.sslhandshake, s, false, "other.test", true)
s:close()
s:connect("127.0.0.1", TLS_SELF_PORT)
show(s.sslhandshake, s, false, "peer.test", true)
s:close()
s:connect("127.0.0.1", TLS_SELF_PORT)
show(s.sslhandshake, s, false, "peer.test", false)
show(s.send, s, "abc\n")
show(s.receive, s)
s:close()
s:connect("127.0.0.1", TCP_PORT)
s:send("send not tls at all\n")
show(s.sslhandshake, s, false)
""", '[1] 1\n[1] session\n[1] 6\n[1] "olleh"\n[1] true\n[2] nil, "certificate host mismatch"\n[2] nil, "18: self-signed certificate"\n[1] true\n[1] 4\n[1] "cba"\n[2] nil, "handshake failed"\n'),
    "udp": (r"""
local u = ngx.socket.udp()
show(u.send, u, "x")
show(u.setpeername, u, "127.0.0.1", UDP_PORT)
show(u.send, u, "ping")
show(u.receive, u)
show(u.send, u, {"a", "b"})
show(u.receive, u, 6)
show(u.close, u)
show(u.close, u)
show(u.receive, u)
u = ngx.socket.udp()
u:settimeout(100)
show(u.setpeername, u, "peer.test", UDP_PORT)
show(u.send, u, "dns")
show(u.receive, u)
show(u.setpeername, u, "nowhere.invalid", UDP_PORT)
""", '[2] nil, "closed"\n[1] 1\n[1] 1\n[1] "echo:ping"\n[1] 1\n[1] "echo:a"\n[1] 1\n[2] nil, "closed"\n[2] nil, "closed"\n[1] 1\n[1] 1\n[1] "echo:dns"\n[2] nil, "nowhere.invalid could not be resolved (3: Host not found)"\n'),
    "options": (r"""
local s = ngx.socket.tcp()
s:connect("127.0.0.1", TCP_PORT)
show(s.setoption, s, "keepalive", true)
show(s.setoption, s, "reuseaddr", 1)
show(s.setoption, s, "tcp-nodelay", true)
show(s.setoption, s, "sndbuf", 65536)
show(s.setoption, s, "rcvbuf", 65536)
show(s.settimeouts, s, 100, 200, 300)
show(s.settimeout, s, 50)
show(s.send, s, "silent 1\n")
show(s.receive, s)
""", '[1] true\n[1] true\n[1] true\n[1] true\n[1] true\n[0] \n[0] \n[1] 9\n[3] nil, "timeout", ""\n'),
    "send_table": (r"""
local s = peer("echo")
show(s.send, s, {"a", {"b", 12, {"c"}}, "\n"})
show(s.receive, s)
show(s.send, s, 3.5)
show(s.send, s, "\n")
show(s.receive, s)
show(s.send, s, "")
show(s.send, s, {})
""", '[1] 6\n[1] "ab12c"\n[1] 3\n[1] 1\n[1] "3.5"\n[1] 0\n[1] 0\n'),
    "unread_and_reconnect": (r"""
local s = peer("send one\\ntwo\\n")
show(s.receive, s)
show(s.setkeepalive, s)
show(s.connect, s, "127.0.0.1", REDIS_PORT)
show(s.send, s, "PING\r\n")
show(s.receive, s)
show(s.setkeepalive, s, 0)
""", '[1] "one"\n[2] nil, "unread data in buffer"\n[1] 1\n[1] 6\n[1] "+PONG"\n[1] 1\n'),
    "backlog": (r"""
local opts = {pool = "bl", pool_size = 1, backlog = 1}
local function user(name, hold)
  local s = ngx.socket.tcp()
  s:settimeout(1000)
  local ok, err = s:connect("127.0.0.1", REDIS_PORT, opts)
  ngx.say(name, " connect: ", ok, " ", err)
  if not ok then return end
  ngx.say(name, " reused: ", s:getreusedtimes())
  ngx.sleep(hold)
  s:send("PING\r\n")
  ngx.say(name, " ", s:receive())
  s:setkeepalive()
end
local a = ngx.thread.spawn(user, "a", 0.1)
local b = ngx.thread.spawn(user, "b", 0)
local c = ngx.thread.spawn(user, "c", 0)
ngx.thread.wait(a) ngx.thread.wait(b) ngx.thread.wait(c)
local s1 = ngx.socket.tcp()
s1:connect("127.0.0.1", REDIS_PORT, opts)
local s2 = ngx.socket.tcp()
s2:settimeout(100)
show(s2.connect, s2, "127.0.0.1", REDIS_PORT, opts)
s1:close()
local s3 = ngx.socket.tcp()
show(s3.connect, s3, "127.0.0.1", REDIS_PORT, opts)
show(s3.getreusedtimes, s3)
""", 'c connect: nil too many waiting connect operations\na connect: 1 nil\na reused: 0\na +PONG\nb connect: 1 nil\nb reused: 1\nb +PONG\n[2] nil, "timeout"\n[1] 1\n[1] 0\n'),
    "threads_busy": (r"""
local s = peer("drip 1 20 hi\\n")
local t = ngx.thread.spawn(function() return s:receive() end)
show(s.receive, s)
show(ngx.thread.wait, t)
show(s.close, s)
""", '[2] nil, "socket busy reading"\n[2] true, "hi"\n[1] 1\n'),
}


def render_case(lua, peers):
    return lua


class CosocketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.peers = Peers().start()

    @classmethod
    def tearDownClass(cls):
        cls.peers.stop()

    def config(self, content, extra_lua=None):
        lua = {"init": INIT + self.peers.vars(),
               "resolver": "127.0.0.1:%d" % self.peers.dns_port,
               "resolver_timeout": "2s"}
        if OPENSSL:
            lua["ssl_trusted_certificate"] = self.peers.ca
        lua.update(extra_lua or {})
        return {"lua": lua, "servers": [{"locations": content}]}

    def test_cases(self):
        locs = [{"match": "= /" + name, "content": lua}
                for name, (lua, _) in CASES.items()]
        with Server(self.config(locs), allow_errors=[r"."]) as srv:
            for name, (lua, expected) in CASES.items():
                with self.subTest(case=name):
                    status, _, body = srv.request("GET", "/" + name)
                    self.assertEqual(status, 200, body)
                    self.assertEqual(body.decode("latin-1"), expected)

    def test_timeouts_and_concurrency(self):
        """A read timeout fires at its time; other requests go on."""
        locs = [
            {"match": "= /slow", "content": r'''
local s = peer("silent 3")
s:settimeout(300)
ngx.update_time()
local t0 = ngx.now()
local data, err, partial = s:receive()
ngx.update_time()
ngx.say(err, " ", #partial, " ", string.format("%.3f", ngx.now() - t0))
'''},
            {"match": "= /fast", "content": r'''
local s = ngx.socket.tcp()
s:connect("127.0.0.1", REDIS_PORT)
s:send("PING\r\n")
ngx.say(s:receive())
s:setkeepalive()
'''},
        ]
        with Server(self.config(locs),
                    expect_errors=[r"lua tcp socket read timed out"]) as srv:
            out = {}

            def slow():
                out["slow"] = srv.request("GET", "/slow").body.decode()
                out["slow_done"] = time.monotonic() - t0
            th = threading.Thread(target=slow)
            t0 = time.monotonic()
            th.start()
            time.sleep(0.05)
            for _ in range(5):
                self.assertEqual(srv.request("GET", "/fast").body, b"+PONG\n")
            fast_done = time.monotonic() - t0
            th.join(5)
            err, n, elapsed = out["slow"].split()
            self.assertEqual((err, n), ("timeout", "0"))
            self.assertGreaterEqual(float(elapsed), 0.29)
            # upper bounds stay loose: CI machines are shared and slow
            self.assertLess(float(elapsed), 1.5)
            # the fast requests were served while the slow one waited
            self.assertLess(fast_done, out["slow_done"])

    def test_resolver_failures(self):
        """No DNS server at the resolver address: a timeout, not a hang;
        "localhost" and IP literals never ask DNS."""
        dead = free_port()
        locs = [{"match": "= /", "content": r'''
local s = ngx.socket.tcp()
ngx.say(select(2, s:connect("peer.test", TCP_PORT)))
ngx.say(s:connect("localhost", TCP_PORT))
ngx.say(s:connect("127.0.0.1", TCP_PORT))
ngx.say(s:connect("::1", CLOSED_PORT))
'''}]
        cfg = self.config(locs, {"resolver": ["127.0.0.1:%d" % dead],
                                 "resolver_timeout": "1s"})
        with Server(cfg, expect_errors=[r"could not be resolved"],
                    allow_errors=[r"connect\(\) to .* failed"]) as srv:
            t0 = time.monotonic()
            body = srv.request("GET", "/", timeout=10).body.decode()
            lines = body.split("\n")
            self.assertRegex(lines[0], r"^peer.test could not be resolved "
                             r"\((110: Operation timed out|2: Server failure"
                             r"|5: Operation refused)\)$")
            self.assertEqual(lines[1:4], ["1", "1", "nilconnection refused"])
            self.assertLess(time.monotonic() - t0, 5)

    def test_bad_request(self):
        """A socket of a request still running, used by another one."""
        locs = [
            {"match": "= /owner", "content": r'''
SHARED_SOCK = ngx.socket.tcp()
SHARED_SOCK:connect("127.0.0.1", REDIS_PORT)
ngx.sleep(0.5)
ngx.say(SHARED_SOCK:send("PING\r\n"), " ", SHARED_SOCK:receive())
'''},
            {"match": "= /other", "content": r'''
show(SHARED_SOCK.send, SHARED_SOCK, "PING\r\n")
show(SHARED_SOCK.receive, SHARED_SOCK)
'''},
            {"match": "= /later", "content": r'''
show(SHARED_SOCK.send, SHARED_SOCK, "PING\r\n")
'''},
        ]
        with Server(self.config(locs),
                    expect_errors=[r"attempt to send data on a closed "
                                   r"socket"]) as srv:
            out = {}
            th = threading.Thread(target=lambda: out.update(
                owner=srv.request("GET", "/owner").body))
            th.start()
            time.sleep(0.2)
            self.assertEqual(srv.request("GET", "/other").body,
                             b"!! bad request\n!! bad request\n")
            th.join(5)
            self.assertEqual(out["owner"], b"6 +PONG\n")
            # the request ended: its socket was closed with it
            self.assertEqual(srv.request("GET", "/later").body,
                             b'[2] nil, "closed"\n')

    def test_connect_timeout(self):
        """connect() to a listener whose accept queue is full: the SYN is
        dropped, and the connect timeout ends the wait at its time."""
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.1)
        locs = [{"match": "= /", "content": r'''
local s = ngx.socket.tcp()
s:settimeouts(250, 1000, 1000)
ngx.update_time()
local t0 = ngx.now()
local ok, err = s:connect("127.0.0.1", %d)
ngx.update_time()
ngx.say(ok, " ", err, " ", string.format("%%.3f", ngx.now() - t0))
''' % port}]
        try:
            with Server(self.config(locs), expect_errors=[
                    r"lua tcp socket connect timed out"]) as srv:
                ok, err, elapsed = srv.request("GET", "/").body.split()
                self.assertEqual((ok, err), (b"nil", b"timeout"))
                self.assertGreaterEqual(float(elapsed), 0.24)
                self.assertLess(float(elapsed), 1.5)
        finally:
            for c in fillers:
                c.close()
            lst.close()

    def test_pool_drops_dead_connections(self):
        """An idle pooled connection is dropped when the peer sends
        something unasked or closes, or when its keepalive timeout ends."""
        locs = [{"match": "= /", "content": r'''
local function conn(pool)
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  assert(s:connect("127.0.0.1", pool == "redis" and REDIS_PORT or TCP_PORT,
                   {pool = pool}))
  return s
end
-- the peer speaks while the connection is idle: dropped
local s = conn("chatty")
s:send("drip 2 200 ok!!\n")
ngx.say(s:receive(2))
ngx.say(s:setkeepalive())
ngx.sleep(0.4)
s = conn("chatty")
ngx.say("chatty ", s:getreusedtimes())
s:close()
-- the peer closes after answering: dropped
s = conn("closing")
s:send("send bye\n")
ngx.say(s:receive(3))
ngx.sleep(0.1)
ngx.say(s:setkeepalive())
s = conn("closing")
ngx.say("closing ", s:getreusedtimes())
s:close()
-- keepalive timeout
s = conn("redis")
s:send("PING\r\n") s:receive()
s:setkeepalive(100)
ngx.sleep(0.3)
s = conn("redis")
ngx.say("expired ", s:getreusedtimes())
s:send("PING\r\n") s:receive()
s:setkeepalive(10000)
s = conn("redis")
ngx.say("kept ", s:getreusedtimes())
s:send("PING\r\n")
ngx.say(s:receive())
s:close()
'''}]
        with Server(self.config(locs)) as srv:
            self.assertEqual(srv.request("GET", "/").body.decode(),
                             "ok\n1\nchatty 0\nbye\n1\nclosing 0\n"
                             "expired 0\nkept 1\n+PONG\n")

    def test_no_fd_leak(self):
        """2,000 requests opening sockets (closed, kept alive, forgotten,
        refused, UDP): the worker's fd count does not grow."""
        locs = [{"match": "= /", "content": r'''
local n = tonumber(ngx.var.arg_n)
local s = ngx.socket.tcp()
local ok, err = s:connect("127.0.0.1", REDIS_PORT)
s:send("PING\r\n")
local r = s:receive()
if n % 4 == 0 then s:setkeepalive(10000, 8)
elseif n % 4 == 1 then s:close()
elseif n % 4 == 2 then -- left open: the request end closes it
else
  local s2 = ngx.socket.tcp()
  s2:connect("127.0.0.1", CLOSED_PORT)
  s:setkeepalive()
end
if n % 10 == 0 then
  local u = ngx.socket.udp()
  u:setpeername("127.0.0.1", UDP_PORT)
  u:send("x")
  u:receive()
  if n % 20 == 0 then u:close() end
end
ngx.say(r)
'''}]
        with Server(self.config(locs),
                    allow_errors=[r"connect\(\) to .* failed"]) as srv:
            pid = srv.wait_workers(1)[0]
            conn = srv.connection()

            def batch(a, b):
                for i in range(a, b):
                    resp = srv.request("GET", "/?n=%d" % i, conn=conn)
                    self.assertEqual(resp.body, b"+PONG\n")
            batch(0, 100)
            before = len(os.listdir("/proc/%d/fd" % pid))
            batch(100, 2100)
            after = len(os.listdir("/proc/%d/fd" % pid))
            conn.close()
            self.assertLessEqual(after, before + 2, (before, after))


# --------------------------------------------------------------- nginx

def nginx_run():
    """Run every case on nginx + lua-nginx-module; print the outputs."""
    import urllib.request
    peers = Peers().start()
    d = tempfile.mkdtemp(prefix="cosock-nginx-")
    port = free_port()
    init = INIT + peers.vars()
    locs = "".join(
        "location = /%s {\n content_by_lua_block {\n%s\n}\n}\n" % (n, lua)
        for n, (lua, _) in CASES.items())
    conf = """
user root;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
error_log %s/error.log info;
pid %s/nginx.pid;
events {}
http {
 access_log off;
 lua_package_path "/usr/share/lua/5.1/?.lua;;";
 resolver 127.0.0.1:%d ipv6=off;
 resolver_timeout 2s;
 lua_ssl_trusted_certificate %s;
 init_by_lua_block {
%s
 }
 server {
  listen 127.0.0.1:%d;
%s
 }
}
""" % (d, d, peers.dns_port, getattr(peers, "ca", "/dev/null"), init, port,
       locs)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["nginx", "-p", d, "-c", d + "/nginx.conf",
                             "-g", "daemon off;"])
    try:
        wait_port(port)
        names = sys.argv[2:] or list(CASES)
        for name in names:
            try:
                body = urllib.request.urlopen(
                    "http://127.0.0.1:%d/%s" % (port, name),
                    timeout=20).read().decode("latin-1")
            except Exception as e:
                body = "HTTP error %s" % e
            print("=== %s\n%s" % (name, body))
            if body != CASES[name][1]:
                print("--- DIFFERS from the expected:\n%s" % CASES[name][1])
                print("--- as python: %r" % body)
    finally:
        proc.terminate()
        proc.wait()
        peers.stop()
        if os.environ.get("KEEP"):
            print("nginx dir", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--nginx":
        nginx_run()
    else:
        unittest.main()
