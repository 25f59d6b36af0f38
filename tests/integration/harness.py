"""
harness.py: start the real moonpool binary and talk to it.

A test builds a Server from a config (a Python dict, or a YAML template
with {port}/{prefix} placeholders), starts it in a fresh temp prefix on a
free 127.0.0.1 port, sends real requests, and on exit checks the error log
the way Test::Nginx does: any [alert], [emerg] or [crit] line fails the
test, and so does any [error] line the test did not declare.

    with Server({"servers": [{"locations": [
            {"match": "/", "content": 'ngx.say("hi")'}]}]}) as srv:
        status, headers, body = srv.request("GET", "/")

Python 3 standard library only. Environment:
    MOONPOOL_BIN  the binary (default: $MOONPOOL_SRC/build/moonpool)
    MOONPOOL_SRC  the repository root (default: two levels above this file)
    MOONPOOL_KEEP keep the temp prefix when set (for debugging)
"""

import errno
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

SRC = os.environ.get("MOONPOOL_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("MOONPOOL_BIN") or os.path.join(SRC, "build", "moonpool")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0
_SIGQUIT = signal.SIGQUIT  # Server.signal() shadows the module in the class

# "2026/11/30 14:40:00 [error] 1234#0: msg" (worker 0), "... 1234#m: msg"
# (master). Lines that do not start like this continue the previous entry
# (a Lua traceback, for instance).
LOG_LINE = re.compile(
    r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w*)\] (\d+)#(\w+): (.*)$")

# Levels that fail a test unless declared.
BAD_LEVELS = ("emerg", "alert", "crit", "error")


def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------- YAML out

_PLAIN = re.compile(r"^[A-Za-z0-9_/.][A-Za-z0-9_./-]*$")
# Plain scalars YAML would read as something other than a string.
_NOT_PLAIN = re.compile(
    r"^(?:true|false|yes|no|on|off|y|n|null|~|[-+]?[0-9._]+(?:e[-+]?[0-9]+)?"
    r"|0x[0-9a-f_]+|0o?[0-7_]+|[-+]?\.(?:inf|nan))$",
    re.IGNORECASE)


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and not _NOT_PLAIN.match(s):
        return s
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(s)


def _literal(s, indent):
    """s as a literal block scalar ("|" or "|-" plus lines), or None when
    a quoted scalar is safer."""
    body = s[:-1] if s.endswith("\n") else s
    if "\n" not in s or body.endswith("\n") or "\r" in s or "\t" in s:
        return None
    first = body.split("\n", 1)[0]
    if first == "" or first[0].isspace():
        return None
    head = " |" if s.endswith("\n") else " |-"
    return head, [(" " * indent + line) if line else ""
                  for line in body.split("\n")]


def _value(v, indent):
    """(text after "key:", lines that follow) for v nested at indent."""
    if isinstance(v, dict):
        return (" {}", []) if not v else ("", _mapping(v, indent))
    if isinstance(v, (list, tuple)):
        return (" []", []) if not v else ("", _sequence(v, indent))
    if isinstance(v, str):
        lit = _literal(v, indent)
        if lit:
            return lit
    return " " + _scalar(v), []


def _mapping(d, indent):
    lines = []
    for k, v in d.items():
        suffix, sub = _value(v, indent + 2)
        lines.append(" " * indent + _scalar(k) + ":" + suffix)
        lines += sub
    return lines


def _sequence(seq, indent):
    lines = []
    for v in seq:
        if isinstance(v, (dict, list, tuple)) and v:
            sub = (_mapping(v, indent + 2) if isinstance(v, dict)
                   else _sequence(v, indent + 2))
            sub[0] = " " * indent + "- " + sub[0][indent + 2:]
            lines += sub
        else:
            suffix, sub = _value(v, indent + 2)
            lines.append(" " * indent + "-" + suffix)
            lines += sub
    return lines


def to_yaml(cfg):
    """Write a dict of dicts/lists/scalars as block-style YAML."""
    return "\n".join(_mapping(cfg, 0)) + "\n"


def _merge(base, over):
    """Deep-merge dict over into dict base (over wins), returning a copy."""
    res = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = _merge(res[k], v)
        else:
            res[k] = v
    return res


# ---------------------------------------------------------------- responses

class Response:
    """One HTTP response. Unpacks as (status, headers, body).

    headers is a list of (name, value) pairs in wire order; use header()
    and header_all() for case-insensitive lookup.
    """

    def __init__(self, status, reason, headers, body, version="HTTP/1.1",
                 raw=b""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version
        self.raw = raw

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def header(self, name, default=None):
        vals = self.header_all(name)
        return vals[0] if vals else default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return "Response(%d %r, %r, %r)" % (self.status, self.reason,
                                            self.headers, self.body[:200])


class IncompleteResponse(Exception):
    pass


def parse_response(data, head=False):
    """Parse one response from the start of data.

    Returns (Response, rest). Raises IncompleteResponse if data does not
    hold a whole response yet. A body without Content-Length or chunked
    framing runs to the end of data (the caller must have read to EOF).
    head=True: the response has no body whatever its headers say.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse("no end of headers")
    lines = data[:end].decode("latin-1").split("\r\n")
    rest = data[end + 4:]
    m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ValueError("bad status line %r" % lines[0])
    version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        headers.append((name, value.strip()))
    resp = Response(status, reason, headers, b"", version)
    lower = {k.lower(): v for k, v in headers}
    if head or status in (204, 304) or 100 <= status < 200:
        resp.raw = data[:end + 4]
        return resp, rest
    if "chunked" in lower.get("transfer-encoding", "").lower():
        body = b""
        pos = 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                raise IncompleteResponse("no chunk size")
            size = int(rest[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                # trailers, then an empty line
                t = rest.find(b"\r\n\r\n", pos - 2)
                if t < 0:
                    raise IncompleteResponse("no end of trailers")
                pos = t + 4
                break
            if len(rest) < pos + size + 2:
                raise IncompleteResponse("short chunk")
            body += rest[pos:pos + size]
            if rest[pos + size:pos + size + 2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            pos += size + 2
        resp.body = body
        resp.raw = data[:end + 4 + pos]
        return resp, rest[pos:]
    if "content-length" in lower:
        n = int(lower["content-length"])
        if len(rest) < n:
            raise IncompleteResponse("short body")
        resp.body = rest[:n]
        resp.raw = data[:end + 4 + n]
        return resp, rest[n:]
    resp.body = rest
    resp.raw = data
    return resp, b""


class Conn:
    """A raw client connection, for keep-alive, pipelining and slow clients.

    send() writes bytes; response() reads exactly one response (leaving
    any following bytes buffered); read_all() reads to EOF; closed() tells
    whether the server closed the connection.
    """

    def __init__(self, port, timeout=IO_TIMEOUT, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def response(self, head=False):
        """Read one response; raise on timeout or EOF before it is whole."""
        while True:
            try:
                resp, rest = parse_response(self.buf, head)
                # A body framed by EOF is only whole at EOF.
                lower = {k.lower() for k, _ in resp.headers}
                framed = (head or "content-length" in lower
                          or "transfer-encoding" in lower
                          or resp.status in (204, 304)
                          or 100 <= resp.status < 200)
                if framed or self.eof:
                    self.buf = rest
                    return resp
            except IncompleteResponse:
                if self.eof:
                    raise
            if not self._fill() and not self.eof:
                raise IncompleteResponse("connection closed")

    def read_all(self, timeout=IO_TIMEOUT):
        """Everything until the server closes; raise if it does not."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                raise socket.timeout("server did not close the connection")
            self._fill()
        data, self.buf = self.buf, b""
        return data

    def closed(self, timeout=1.0):
        """True if the server closes (EOF/RST) within timeout with no data
        pending; False if the connection is still open after timeout."""
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            return not self._fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- logs

class LogEntry:
    def __init__(self, time_, level, pid, worker, text):
        self.time = time_
        self.level = level
        self.pid = int(pid)
        self.worker = worker   # "m" for the master, else the worker number
        self.text = text       # message and continuation lines

    def __str__(self):
        return "%s [%s] %d#%s: %s" % (self.time, self.level, self.pid,
                                      self.worker, self.text)


def parse_log(text):
    """Split an error log into LogEntry objects (tracebacks included)."""
    entries = []
    for line in text.split("\n"):
        m = LOG_LINE.match(line)
        if m:
            entries.append(LogEntry(*m.groups()))
        elif entries and line:
            entries[-1].text += "\n" + line
        elif line:
            entries.append(LogEntry("", "?", 0, "?", line))
    return entries


def _pattern(p):
    return p if hasattr(p, "search") else re.compile(p)


# ---------------------------------------------------------------- server

class Server:
    """A moonpool master in a temp prefix.

    config: a dict merged over the defaults, or a YAML string in which
    {port}, {port2}, ... and {prefix} are replaced (str.format, so write
    literal braces as {{ }}). Defaults, added when the key is missing:
    cluster.workers 1, cluster.pid_file, log.error, log.level info; in
    dict configs every server without "listen" listens on 127.0.0.1:{port}.

    expect_errors: regexes that must each match an [error]-or-worse log
    entry by the time the server is checked. allow_errors: regexes for
    entries that may appear. Any other [error]/[crit]/[alert]/[emerg]
    entry fails check_log().
    """

    def __init__(self, config=None, expect_errors=(), allow_errors=(),
                 ports=1, files=None, env=None):
        self.prefix = tempfile.mkdtemp(prefix="moonpool-test-")
        self.ports = [free_port() for _ in range(ports)]
        self.port = self.ports[0]
        self.error_log_path = os.path.join(self.prefix, "error.log")
        self.pid_file = os.path.join(self.prefix, "moonpool.pid")
        self.conf_path = os.path.join(self.prefix, "moonpool.yaml")
        self.expect_errors = [_pattern(p) for p in expect_errors]
        self.allow_errors = [_pattern(p) for p in allow_errors]
        self.proc = None
        self.env = env
        self._known_workers = set()
        self.returncode = None
        for name, content in (files or {}).items():
            path = os.path.join(self.prefix, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(content)
        self.write_config(config if config is not None else {})

    # -- config

    def fmt(self, text):
        """Fill {port}, {port2}.., {prefix} in a template string."""
        kw = {"prefix": self.prefix, "port": self.port}
        for i, p in enumerate(self.ports[1:], 2):
            kw["port%d" % i] = p
        return text.format(**kw)

    def defaults(self):
        return {
            "cluster": {"workers": 1, "pid_file": self.pid_file},
            "log": {"error": self.error_log_path, "level": "info"},
        }

    def render(self, config):
        if isinstance(config, str):
            text = self.fmt(config)
            # Add the default sections the template does not have.
            for key, val in self.defaults().items():
                if not re.search(r"^%s:" % key, text, re.M):
                    text = to_yaml({key: val}) + text
            return text
        cfg = _merge(self.defaults(), config)
        servers = []
        for srv in cfg.get("servers", []):
            srv = dict(srv)
            srv.setdefault("listen", ["127.0.0.1:%d" % self.port])
            servers.append(srv)
        if servers:
            cfg["servers"] = servers

        def fill(v):
            if isinstance(v, str) and ("{port" in v or "{prefix}" in v):
                return v.replace("{prefix}", self.prefix).replace(
                    "{port}", str(self.port))
            if isinstance(v, dict):
                return {k: fill(x) for k, x in v.items()}
            if isinstance(v, list):
                return [fill(x) for x in v]
            return v
        for i, p in enumerate(self.ports[1:], 2):
            # rare multi-port configs: {port2}, ...
            cfg = json.loads(json.dumps(cfg).replace("{port%d}" % i, str(p)))
        return to_yaml(fill(cfg))

    def write_config(self, config):
        """(Re)write the config file; a reload test then sends HUP."""
        self.config_text = self.render(config)
        with open(self.conf_path, "w") as f:
            f.write(self.config_text)

    # -- life cycle

    def start(self, wait=True):
        if not os.access(BIN, os.X_OK):
            raise unittest.SkipTest("no moonpool binary at %s" % BIN) \
                if os.environ.get("MOONPOOL_SKIP_MISSING") else \
                AssertionError("no moonpool binary at %s" % BIN)
        self.stdout = open(os.path.join(self.prefix, "stdout"), "wb")
        self.stderr = open(os.path.join(self.prefix, "stderr"), "wb")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            [BIN, "-c", self.conf_path], cwd=self.prefix,
            stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=self.stderr,
            env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Poll until every port accepts; fail with the logs if it does
        not within timeout or if the master exits."""
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        delay = 0.005
        while pending:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError(
                    "moonpool exited with %s while starting\n%s"
                    % (self.proc.returncode, self.diagnostics()))
            try:
                socket.create_connection(("127.0.0.1", pending[0]),
                                         0.5).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "moonpool did not accept on 127.0.0.1:%d within %.0fs\n%s"
                    % (pending[0], timeout, self.diagnostics()))
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._known_workers.update(self.worker_pids())

    def diagnostics(self):
        parts = ["--- config %s\n%s" % (self.conf_path, self.config_text)]
        for name in ("stderr", "stdout"):
            try:
                with open(os.path.join(self.prefix, name), "rb") as f:
                    parts.append("--- %s\n%s" % (
                        name, f.read()[-4000:].decode("utf-8", "replace")))
            except OSError:
                pass
        parts.append("--- error log\n%s" % self.error_log()[-6000:])
        return "\n".join(parts)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Send sig to the master."""
        os.kill(self.proc.pid, sig)

    def read_pid_file(self):
        """The pid in cluster.pid_file, None when it is missing."""
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def worker_pids(self):
        """Pids of the master's live children, from /proc/*/stat."""
        if self.proc is None:
            return []
        pids = children_of(self.proc.pid)
        self._known_workers.update(pids)
        return pids

    def wait_workers(self, n, timeout=START_TIMEOUT, exclude=()):
        """Wait until the master has n children not in exclude."""
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.worker_pids() if p not in exclude]
            if len(pids) == n:
                return pids
            if time.monotonic() > deadline:
                raise AssertionError("expected %d workers, have %r\n%s" % (
                    n, pids, self.diagnostics()))
            time.sleep(0.02)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the master to exit; return its code, None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=_SIGQUIT, timeout=STOP_TIMEOUT):
        """Stop the master with sig, SIGKILL it after timeout; then make
        sure no child survives (killing any, by pid). Returns a list of
        problems found (empty when the stop was clean)."""
        problems = []
        if self.proc is None:
            return problems
        self.worker_pids()
        if self.proc.poll() is None:
            try:
                self.signal(sig)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                problems.append("master %d ignored signal %d for %.0fs"
                                % (self.proc.pid, sig, timeout))
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        # Workers must go with the master (PDEATHSIG or pipe), so give
        # them a moment to notice, then kill what is left.
        deadline = time.monotonic() + 3.0
        left = self._survivors()
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = self._survivors()
        for pid in left:
            problems.append("worker %d outlived the master" % pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for f in (getattr(self, "stdout", None), getattr(self, "stderr",
                                                        None)):
            if f:
                f.close()
        return problems

    def _survivors(self):
        left = []
        for pid in sorted(self._known_workers):
            info = proc_stat(pid)
            # The pid may have been reused: only count our binary.
            if info is None or info[1] == "Z":
                continue
            if proc_exe(pid) == os.path.realpath(BIN):
                left.append(pid)
        return left

    # -- logs

    def error_log(self):
        try:
            with open(self.error_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """An offset into the error log; check_log(since=mark) looks only
        at what came after it."""
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def log_entries(self, since=0):
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        return parse_log(text)

    def wait_log(self, pattern, since=0, timeout=3.0):
        """Wait until an entry matching pattern is logged; return it."""
        pat = _pattern(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for e in self.log_entries(since):
                if pat.search(str(e)):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError("no log entry matches %r\n--- log\n%s"
                                     % (pat.pattern,
                                        self.error_log()[-4000:]))
            time.sleep(0.02)

    def check_log(self, since=0, expect=None, allow=None, wait=1.0):
        """Return a list of problems: expected entries missing, bad-level
        entries nobody declared. Waits up to `wait` seconds for expected
        entries, since some are written after the response."""
        expect = [_pattern(p) for p in
                  (self.expect_errors if expect is None else expect)]
        allow = [_pattern(p) for p in
                 (self.allow_errors if allow is None else allow)]
        deadline = time.monotonic() + wait
        while True:
            entries = self.log_entries(since)
            missing = [p for p in expect
                       if not any(p.search(str(e)) for e in entries)]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        problems = ["expected log entry missing: %r" % p.pattern
                    for p in missing]
        for e in entries:
            if e.level not in BAD_LEVELS:
                continue
            if any(p.search(str(e)) for p in expect + allow):
                continue
            problems.append("unexpected log entry: %s" % e)
        return problems

    # -- clients

    def request(self, method="GET", path="/", headers=None, body=None,
                conn=None, timeout=IO_TIMEOUT):
        """One request through http.client. Returns a Response (unpacks as
        (status, headers, body)). Pass conn=self.connection() to reuse a
        keep-alive connection."""
        own = conn is None
        if own:
            conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.getheaders(), data,
                            "HTTP/%d.%d" % divmod(r.version, 10))
        finally:
            if own:
                conn.close()

    def connection(self, timeout=IO_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def conn(self, timeout=IO_TIMEOUT, port=None):
        """A raw Conn to the server."""
        return Conn(port or self.port, timeout)

    def raw(self, data, timeout=IO_TIMEOUT, port=None):
        """Send bytes, read until the server closes (or timeout), return
        everything read. A timeout returns what was read so far."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        with Conn(port or self.port, timeout) as c:
            c.send(data)
            try:
                return c.read_all(timeout)
            except socket.timeout:
                return c.buf

    # -- context manager

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        problems = self.finish()
        if problems and exc_type is None:
            raise AssertionError("\n".join(problems))

    def finish(self, since=0, sig=_SIGQUIT):
        """Stop, check the log, clean up; return the list of problems."""
        problems = self.stop(sig)
        problems += self.check_log(since=since, wait=0)
        if problems:
            problems.append("--- error log tail\n" + self.error_log()[-4000:])
        if not os.environ.get("MOONPOOL_KEEP") and not problems:
            shutil.rmtree(self.prefix, ignore_errors=True)
        elif problems:
            problems.append("(prefix kept: %s)" % self.prefix)
        return problems


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    """(ppid, state) of pid from /proc/pid/stat, None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parens: split after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def proc_exe(pid):
    try:
        return os.path.realpath("/proc/%d/exe" % pid)
    except OSError:
        return None


def children_of(ppid):
    """Live (non-zombie) children of ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = proc_stat(int(name))
        if info and info[0] == ppid and info[1] != "Z":
            out.append(int(name))
    return sorted(out)


def pid_alive(pid):
    info = proc_stat(pid)
    return info is not None and info[1] != "Z"


# ---------------------------------------------------------------- unittest

class ServerTestCase(unittest.TestCase):
    """Base class: self.server(config, ...) starts a Server that is
    stopped and log-checked when the test ends.

    Subclasses may set CONFIG (and EXPECT_ERRORS/ALLOW_ERRORS) to share
    one server across the class: it starts in setUpClass, and each test
    checks only the log entries written while it ran (self.expect_log()
    declares the [error] entries a test causes).
    """

    CONFIG = None
    ALLOW_ERRORS = ()
    shared = None

    @classmethod
    def setUpClass(cls):
        if cls.CONFIG is not None:
            cls.shared = Server(cls.CONFIG, allow_errors=cls.ALLOW_ERRORS)
            try:
                cls.shared.start()
            except BaseException:
                cls.shared.stop()
                raise

    @classmethod
    def tearDownClass(cls):
        if cls.shared is not None:
            srv, cls.shared = cls.shared, None
            # Per-test checks already ran; only the shutdown is new.
            problems = srv.stop()
            problems += srv.check_log(since=getattr(cls, "_mark", 0),
                                      wait=0)
            if problems:
                raise AssertionError("\n".join(problems))
            if not os.environ.get("MOONPOOL_KEEP"):
                shutil.rmtree(srv.prefix, ignore_errors=True)

    def setUp(self):
        self._expect = []
        self._allow = []
        if self.shared is not None:
            self.assertTrue(self.shared.alive(),
                            "shared server is gone\n"
                            + self.shared.diagnostics())
            self._mark = self.shared.log_mark()
            self.addCleanup(self._check_shared)

    def _check_shared(self):
        problems = self.shared.check_log(since=self._mark,
                                         expect=self._expect,
                                         allow=list(self.ALLOW_ERRORS)
                                         + self._allow)
        type(self)._mark = self.shared.log_mark()
        if problems:
            self.fail("\n".join(problems) + "\n--- log since test start\n"
                      + "\n".join(str(e) for e in
                                  self.shared.log_entries(self._mark)))

    def expect_log(self, *patterns):
        """Declare [error]-or-worse entries this test must cause."""
        self._expect.extend(_pattern(p) for p in patterns)

    def allow_log(self, *patterns):
        """Declare [error]-or-worse entries this test may cause."""
        self._allow.extend(_pattern(p) for p in patterns)

    def server(self, config=None, expect_errors=(), allow_errors=(),
               start=True, **kw):
        srv = Server(config, expect_errors, allow_errors, **kw)

        def cleanup():
            problems = srv.finish()
            if problems:
                self.fail("\n".join(problems))
        self.addCleanup(cleanup)
        if start:
            srv.start()
        return srv

    # -- assertions, data-driven

    def check(self, srv, request, status=200, body=None, body_re=None,
              headers=None, absent_headers=(), log=()):
        """Send request (a dict for Server.request, or bytes sent raw on a
        new connection and read to EOF), compare the response, and wait
        for each regex in log to be matched by a log entry written since
        the request. headers: name -> value (None: must be present,
        any value). Returns the Response."""
        mark = srv.log_mark()
        if isinstance(request, (bytes, str)):
            data = srv.raw(request)
            resp, _ = parse_response(data)
        else:
            resp = srv.request(**request)
        ctx = "response: %r" % resp
        self.assertEqual(resp.status, status, ctx)
        if body is not None:
            self.assertEqual(resp.body, body.encode() if isinstance(
                body, str) else body, ctx)
        if body_re is not None:
            self.assertRegex(resp.body.decode("utf-8", "replace"), body_re,
                             ctx)
        for name, value in (headers or {}).items():
            got = resp.header_all(name)
            self.assertTrue(got, "no %s header; %s" % (name, ctx))
            if value is not None:
                if isinstance(value, (list, tuple)):
                    self.assertEqual(got, list(value), ctx)
                else:
                    self.assertEqual(got, [value], ctx)
        for name in absent_headers:
            self.assertEqual(resp.header_all(name), [],
                             "unexpected %s; %s" % (name, ctx))
        for pat in log:
            srv.wait_log(pat, since=mark)
        return resp
