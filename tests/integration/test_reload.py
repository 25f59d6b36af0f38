"""
test_reload.py: hot reload, systemd integration, the watchdog and the
binary upgrade, through the real binary and real signals.

- 20 HUPs under keep-alive load (some clients idle across each reload):
  no connection error, no 5xx, each response is one whole version, and
  versions never go backwards on one connection;
- a long request started before a HUP finishes with the old code;
- shared dicts keep their data across a reload unless resized;
- an invalid config keeps the old generation ("-s reload --wait" exits 1
  with the file:line:col error);
- sd_notify messages on a NOTIFY_SOCKET datagram socket owned by the test;
- the watchdog kills a worker stuck in a Lua loop and names the handler;
- USR2 binary upgrade under load, and a failed one;
- cluster.user drops root in workers.

Every wait polls with a deadline; clients and load loops are bounded.
"""

import http.client
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import BIN, ServerTestCase, pid_alive, proc_stat

CMD_TIMEOUT = 30


def run(*args):
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=CMD_TIMEOUT)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


def versioned(version, workers=2, extra=None):
    cfg = {
        "cluster": {"workers": workers, "shutdown_timeout": "10s"},
        "shared_dicts": {"counters": "1m", "sized": "1m"},
        "servers": [{"locations": [
            {"match": "= /v", "content": 'ngx.print("v%d")' % version},
            {"match": "= /incr", "content":
                'ngx.print((ngx.shared.counters:incr("n", 1, 0)))'},
            {"match": "= /get", "content":
                'ngx.print(tostring(ngx.shared[ngx.var.arg_d]:get("k")))'},
            {"match": "= /set", "content":
                'ngx.shared[ngx.var.arg_d]:set("k", "kept") ngx.print("ok")'},
            {"match": "= /slow", "content": (
                "local t0 = ngx.now()\n"
                "repeat ngx.update_time() until ngx.now() - t0 >= 2\n"
                'ngx.print("slow v%d")' % version)},
        ]}],
    }
    for k, v in (extra or {}).items():
        cfg[k] = dict(cfg.get(k, {}), **v)
    return cfg


class Client(threading.Thread):
    """Sends GET /v on one keep-alive http.client connection until told to
    stop (or for at most `limit` seconds), pausing `pause` (a (lo, hi)
    range of seconds) between requests. Records errors and, per
    connection, the versions seen."""

    def __init__(self, port, pause=None, limit=60.0):
        super().__init__(daemon=True)
        self.port = port
        self.pause = pause
        self.limit = limit
        self.stop = threading.Event()
        self.errors = []
        self.bad = []
        self.conns = [[]]   # versions per connection, in order
        self.count = 0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        end = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                conn.request("GET", "/v")
                r = conn.getresponse()
                body = r.read().decode("latin-1")
                closing = r.getheader("Connection", "").lower() == "close"
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
                conn.close()
                self.conns.append([])
                continue
            self.count += 1
            m = re.fullmatch(r"v(\d+)", body)
            if r.status != 200 or not m:
                self.bad.append((r.status, body))
            else:
                self.conns[-1].append(int(m.group(1)))
            if closing:
                conn.close()   # http.client reconnects on the next request
                self.conns.append([])
            if self.pause:
                time.sleep(random.uniform(*self.pause))
        conn.close()


class NotifySocket:
    """A NOTIFY_SOCKET datagram socket owned by the test."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait(self, pattern, timeout=10.0, start=0):
        """Wait for a message (at index >= start) matching pattern."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            for i, m in enumerate(self.messages[start:], start):
                if re.search(pattern, m):
                    return i
            if time.monotonic() > deadline:
                raise AssertionError("no notify message matches %r in %r"
                                     % (pattern, self.messages))

    def close(self):
        self.sock.close()


class ReloadTest(ServerTestCase):

    def reload(self, srv, expect_ok=True):
        rc, _, err = run("-s", "reload", "--wait", "-c", srv.conf_path)
        if expect_ok:
            self.assertEqual(rc, 0, err + srv.error_log()[-3000:])
        return rc, err

    def test_reload_under_keepalive_load(self):
        srv = self.server(versioned(1))
        srv.wait_workers(2)
        clients = [Client(srv.port) for _ in range(3)]
        clients += [Client(srv.port, pause=(0.2, 1.0)) for _ in range(4)]
        for c in clients:
            c.start()
        try:
            wait_for(lambda: all(c.count > 0 for c in clients), 10,
                     "every client to get an answer")
            for version in range(2, 22):
                srv.write_config(versioned(version))
                self.reload(srv)
                # requests after --wait returned get the new version
                self.assertEqual(srv.request("GET", "/v").body,
                                 b"v%d" % version)
                time.sleep(0.05)
            time.sleep(1.2)    # let the pausing clients cross a reload
        finally:
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(15)
        total = sum(c.count for c in clients)
        for c in clients:
            self.assertEqual(c.errors, [], "connection errors")
            self.assertEqual(c.bad, [], "bad responses")
            for seen in c.conns:
                self.assertEqual(seen, sorted(seen),
                                 "versions went backwards on a connection")
        self.assertGreater(total, 200)
        versions = {v for c in clients for seen in c.conns for v in seen}
        self.assertIn(21, versions)
        self.assertGreater(len(versions), 5)
        # every old generation drains and exits
        wait_for(lambda: len(srv.worker_pids()) == 2, 15,
                 "old generations to exit")

    def test_reload_long_request_finishes(self):
        srv = self.server(versioned(1))
        srv.wait_workers(2)
        result = {}

        def slow():
            try:
                result["r"] = srv.request("GET", "/slow", timeout=15)
            except Exception as e:   # reported below
                result["e"] = e
        t = threading.Thread(target=slow, daemon=True)
        t.start()
        time.sleep(0.3)   # the request is in its handler
        srv.write_config(versioned(2))
        self.reload(srv)
        self.assertEqual(srv.request("GET", "/v").body, b"v2")
        t.join(15)
        self.assertNotIn("e", result)
        self.assertEqual((result["r"].status, result["r"].body),
                         (200, b"slow v1"))

    def test_reload_keeps_dicts_unless_resized(self):
        srv = self.server(versioned(1))
        for i in range(1, 6):
            self.assertEqual(srv.request("GET", "/incr").body, b"%d" % i)
        self.assertEqual(srv.request("GET", "/set?d=sized").body, b"ok")
        srv.write_config(versioned(2))
        self.reload(srv)
        self.assertEqual(srv.request("GET", "/incr").body, b"6")
        self.assertEqual(srv.request("GET", "/get?d=sized").body, b"kept")
        # a resized dict starts empty; the other one keeps counting
        srv.write_config(versioned(3, extra={"shared_dicts": {
            "sized": "2m"}}))
        self.reload(srv)
        self.assertEqual(srv.request("GET", "/get?d=sized").body, b"nil")
        self.assertEqual(srv.request("GET", "/incr").body, b"7")
        srv.wait_log(r'shared dict "sized"|"sized".*size')

    def test_reload_invalid_config_keeps_old(self):
        srv = self.server(versioned(1), allow_errors=[r"reload failed"])
        pids = sorted(srv.wait_workers(2))
        # a config error: "-s reload --wait" sees it before signalling,
        # and so does the master given a HUP
        with open(srv.conf_path, "a") as f:
            f.write("bogus_key: 1\n")
        rc, err = self.reload(srv, expect_ok=False)
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"reload failed: \S*moonpool\.yaml:\d+:\d+: ")
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"\[error\].*reload failed.*moonpool\.yaml:\d+:\d+: "
                     r"unknown key")
        # a Lua syntax error
        bad = versioned(2)
        bad["servers"][0]["locations"][0]["content"] = 'ngx.print("v2"'
        srv.write_config(bad)
        rc, err = self.reload(srv, expect_ok=False)
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"reload failed: \S*moonpool\.yaml:\d+:\d+: ")
        self.assertEqual(srv.request("GET", "/v").body, b"v1")
        self.assertEqual(sorted(srv.worker_pids()), pids)
        # and a good one still works afterwards
        srv.write_config(versioned(3))
        self.reload(srv)
        self.assertEqual(srv.request("GET", "/v").body, b"v3")

    def test_reload_worker_failing_to_start_keeps_old(self):
        srv = self.server(versioned(1), allow_errors=[
            r"reload failed", r"exited with code 3"])
        pids = sorted(srv.wait_workers(2))
        srv.write_config(versioned(2, extra={"lua": {
            "init_worker": "os.exit(3)"}}))
        rc, err = self.reload(srv, expect_ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("before it was ready", err)
        self.assertEqual(srv.request("GET", "/v").body, b"v1")
        wait_for(lambda: sorted(srv.worker_pids()) == pids, 10,
                 "only the old workers")

    def test_reload_wait_needs_reload(self):
        srv = self.server(versioned(1), start=False)
        rc, _, err = run("-s", "quit", "--wait", "-c", srv.conf_path)
        self.assertEqual(rc, 1)
        self.assertIn("--wait goes with -s reload", err)

    def test_reload_sd_notify(self):
        srv = self.server(versioned(1), start=False)
        ns = NotifySocket(srv.prefix)
        self.addCleanup(ns.close)
        rc, out, _ = run("-v")
        if "sd_notify" not in out:
            self.skipTest("built without libsystemd")
        srv.env = {"NOTIFY_SOCKET": ns.path}
        srv.start()
        i = ns.wait(r"^READY=1\nSTATUS=serving, generation 1, 2 workers$")
        srv.write_config(versioned(2))
        self.reload(srv)
        j = ns.wait(r"^RELOADING=1\nMONOTONIC_USEC=\d+\n", start=i + 1)
        k = ns.wait(r"^READY=1\nSTATUS=serving, generation 2, 2 workers$",
                    start=j + 1)
        # a failed reload still ends with READY=1 and says why
        srv.allow_errors.append(re.compile("reload failed"))
        bad = versioned(3)
        bad["servers"][0]["locations"][0]["content"] = 'ngx.print("v3"'
        srv.write_config(bad)
        self.reload(srv, expect_ok=False)
        j = ns.wait(r"^RELOADING=1\n", start=k + 1)
        ns.wait(r"^READY=1\nSTATUS=reload failed: \S+:\d+:\d+: ",
                start=j + 1)
        self.assertEqual(srv.stop(), [])
        ns.wait(r"^STOPPING=1")


class WatchdogTest(ServerTestCase):

    def test_watchdog_kills_stuck_worker(self):
        cfg = {
            "cluster": {"workers": 2, "watchdog_timeout": "1s"},
            "servers": [{"locations": [
                {"match": "= /spin", "content": "while true do end"},
                {"match": "/", "content": 'ngx.print("ok")'},
            ]}],
        }
        srv = self.server(cfg, allow_errors=[
            r"is stuck", r"exited on signal 9"])
        before = srv.wait_workers(2)
        mark = srv.log_mark()
        errors = []

        def spin():
            try:
                srv.request("GET", "/spin", timeout=10)
            except (OSError, http.client.HTTPException):
                pass   # the stuck worker is killed under this request
        t = threading.Thread(target=spin, daemon=True)
        t.start()
        # the other worker keeps serving while one spins
        end = time.monotonic() + 0.8
        served = 0
        while time.monotonic() < end:
            try:
                if srv.request("GET", "/", timeout=5).body == b"ok":
                    served += 1
            except (OSError, http.client.HTTPException) as e:
                errors.append(e)
        self.assertEqual(errors, [])
        self.assertGreater(served, 10)
        # the log names the handler by its place in the config
        line = next(i for i, text in enumerate(srv.config_text.split("\n"),
                                               1) if "while true" in text)
        srv.wait_log(r"\[alert\].*worker \d \(pid \d+\) is stuck.*"
                     r'last running "=content_by_lua\(moonpool\.yaml:(%d|%d)'
                     r'\)"; killing it' % (line, line - 1),
                     since=mark, timeout=5)
        t.join(10)
        after = wait_for(lambda: len(set(before) - set(srv.worker_pids()))
                         == 1 and len(srv.worker_pids()) == 2
                         and srv.worker_pids(), 10, "a respawned worker")
        self.assertEqual(len(set(after) & set(before)), 1)
        self.assertEqual(srv.request("GET", "/").body, b"ok")


class UpgradeTest(ServerTestCase):

    def test_upgrade_under_load(self):
        srv = self.server(versioned(1))
        srv.wait_workers(2)
        old_master = srv.pid
        clients = [Client(srv.port) for _ in range(2)]
        clients.append(Client(srv.port, pause=(0.1, 0.5)))
        for c in clients:
            c.start()
        new_master = None
        try:
            wait_for(lambda: all(c.count > 0 for c in clients), 10,
                     "clients to start")
            srv.signal(signal.SIGUSR2)
            new_master = wait_for(
                lambda: (srv.read_pid_file() or old_master) != old_master
                and srv.read_pid_file(), 10, "a new pid in the pid file")
            self.assertEqual(srv.wait_exit(15), 0)   # the old master
            time.sleep(0.5)
        finally:
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(15)
            if new_master:
                self.addCleanup(self.stop_by_pid, new_master)
        for c in clients:
            self.assertEqual(c.errors, [])
            self.assertEqual(c.bad, [])
        self.assertTrue(pid_alive(new_master))
        self.assertEqual(srv.request("GET", "/v").body, b"v1")
        srv.wait_log(r"#m: using inherited socket \d+ for 127\.0\.0\.1:%d"
                     % srv.port)
        srv.wait_log(r"binary upgrade: new master \(pid %d\) took over"
                     % new_master)

    def stop_by_pid(self, pid):
        os.kill(pid, signal.SIGQUIT)
        wait_for(lambda: not pid_alive(pid), 15, "the new master to exit")

    def test_upgrade_failure_keeps_old(self):
        srv = self.server(versioned(1), allow_errors=[
            r"binary upgrade failed", r"bogus_key"])
        srv.wait_workers(2)
        with open(srv.conf_path, "a") as f:
            f.write("bogus_key: 1\n")
        srv.signal(signal.SIGUSR2)
        srv.wait_log(r"\[error\].*binary upgrade failed: new master "
                     r"\(pid \d+\) exited with code 1, still serving",
                     timeout=10)
        self.assertTrue(srv.alive())
        self.assertEqual(srv.read_pid_file(), srv.pid)
        self.assertEqual(srv.request("GET", "/v").body, b"v1")


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class UserTest(ServerTestCase):

    def test_user_drops_root_in_workers(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        srv = self.server(versioned(1, extra={
            "cluster": {"user": "nobody"}}))
        os.chmod(srv.prefix, 0o755)
        workers = srv.wait_workers(2)

        def uid(pid):
            with open("/proc/%d/status" % pid) as f:
                return int(re.search(r"^Uid:\s+(\d+)", f.read(),
                                     re.M).group(1))
        self.assertEqual(srv.request("GET", "/v").body, b"v1")
        for pid in workers:
            wait_for(lambda: uid(pid) == nobody.pw_uid, 5,
                     "worker %d to run as nobody" % pid)
        self.assertEqual(os.stat("/proc/%d" % srv.pid).st_uid, 0)
        self.assertEqual(srv.request("GET", "/v").body, b"v1")
        self.assertEqual(os.stat(srv.error_log_path).st_uid, nobody.pw_uid)
        # a reload still works (the master kept root)
        srv.write_config(versioned(2, extra={"cluster": {"user": "nobody"}}))
        rc, _, err = run("-s", "reload", "--wait", "-c", srv.conf_path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.request("GET", "/v").body, b"v2")


if __name__ == "__main__":
    unittest.main()
