"""
test_lifecycle.py: the master process and the command line, through the
real binary: -t, -v, -h, -s; workers are the master's children; QUIT and
TERM stop everything; a killed worker is respawned; a killed master takes
its workers with it; a worker that dies in a loop is respawned with
back-off; USR1 reopens the log; HUP reloads (and survives a bad config).

Every wait polls with a deadline; nothing sleeps a fixed time.
"""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import BIN, ServerTestCase, pid_alive, proc_stat

HELLO = {
    "cluster": {"workers": 2, "shutdown_timeout": "5s"},
    "servers": [{"locations": [{"match": "/", "content": 'ngx.say("hi")'}]}],
}

CMD_TIMEOUT = 20


def run(*args):
    """Run the binary with args; return (exit code, stdout, stderr)."""
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=CMD_TIMEOUT)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def wait_for(cond, timeout=5.0, what="condition"):
    """Poll cond() until it is true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


def zombies_of(ppid):
    """Children of ppid that exited and were not reaped."""
    out = []
    for name in os.listdir("/proc"):
        info = proc_stat(int(name)) if name.isdigit() else None
        if info and info[0] == ppid and info[1] == "Z":
            out.append(int(name))
    return out


def dead_pid():
    """A pid that belonged to a process which is gone now."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


class CommandLineTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(BIN, os.X_OK):
            self.fail("no moonpool binary at %s" % BIN)

    def test_lifecycle_version(self):
        rc, out, err = run("-v")
        self.assertEqual(rc, 0, err)
        self.assertIn("moonpool/0.1.0", out)
        for lib in ("LuaJIT", "libevent", "OpenSSL", "libyaml", "PCRE2",
                    "http-parser"):
            self.assertRegex(out, r"%s\s+\S*\d" % re.escape(lib))

    def test_lifecycle_help(self):
        rc, out, _ = run("-h")
        self.assertEqual(rc, 0)
        self.assertIn("usage: moonpool", out)
        for opt in ("-c FILE", "-t", "-s SIGNAL", "-v", "-h"):
            self.assertIn(opt, out)

    def test_lifecycle_bad_option(self):
        rc, _, err = run("-x")
        self.assertEqual(rc, 1)
        self.assertIn("invalid option", err)
        self.assertIn("usage:", err)

    def test_lifecycle_check_good_config(self):
        srv = self.server(HELLO, start=False)
        rc, _, err = run("-t", "-c", srv.conf_path)
        self.assertEqual(rc, 0, err)
        self.assertIn("moonpool: configuration file %s test is successful"
                      % srv.conf_path, err)

    def test_lifecycle_check_unknown_key(self):
        srv = self.server("cluster:\n  workers: 2\n  workerz: 3\n",
                          start=False)
        rc, _, err = run("-t", "-c", srv.conf_path)
        self.assertEqual(rc, 1, err)
        m = re.search(r"moonpool: (\S+):(\d+):(\d+): ", err)
        self.assertTrue(m, err)
        self.assertTrue(m.group(1).endswith("moonpool.yaml"), err)
        lines = srv.config_text.split("\n")
        line, col = int(m.group(2)), int(m.group(3))
        self.assertTrue(lines[line - 1][col - 1:].startswith("workerz"),
                        "%s points at %r" % (err, lines[line - 1]))
        self.assertIn("test failed", err)

    def test_lifecycle_check_lua_syntax_error(self):
        cfg = dict(HELLO, servers=[{"locations": [
            {"match": "/", "content": 'ngx.say("hi"'}]}])
        srv = self.server(cfg, start=False)
        rc, _, err = run("-t", "-c", srv.conf_path)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"moonpool: \S+:\d+:\d+: ")

    def test_lifecycle_check_missing_file(self):
        rc, _, err = run("-t", "-c", "/nonexistent/moonpool.yaml")
        self.assertEqual(rc, 1)
        self.assertIn("/nonexistent/moonpool.yaml", err)

    def test_lifecycle_signal_without_master(self):
        srv = self.server(HELLO, start=False)
        rc, _, err = run("-s", "reload", "-c", srv.conf_path)
        self.assertEqual(rc, 1)
        self.assertIn(srv.pid_file, err)
        self.assertIn("No such file", err)

    def test_lifecycle_signal_stale_pid_file(self):
        srv = self.server(HELLO, start=False)
        with open(srv.pid_file, "w") as f:
            f.write("%d\n" % dead_pid())
        rc, _, err = run("-s", "quit", "-c", srv.conf_path)
        self.assertEqual(rc, 1)
        self.assertIn("stale pid file", err)
        with open(srv.pid_file, "w") as f:
            f.write("garbage\n")
        rc, _, err = run("-s", "quit", "-c", srv.conf_path)
        self.assertEqual(rc, 1)
        self.assertIn("invalid PID", err)

    def test_lifecycle_signal_unknown(self):
        rc, _, err = run("-s", "explode")
        self.assertEqual(rc, 1)
        self.assertIn("invalid signal", err)


class MasterTest(ServerTestCase):

    def serve(self, config=HELLO, **kw):
        srv = self.server(config, **kw)
        workers = srv.wait_workers(config["cluster"]["workers"])
        return srv, workers

    def assert_serves(self, srv, n=4):
        for _ in range(n):
            status, _, body = srv.request("GET", "/")
            self.assertEqual((status, body), (200, b"hi\n"))

    def assert_all_gone(self, pids, timeout=5.0):
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout,
                 "processes %r to exit" % (pids,))

    def test_lifecycle_start_and_quit(self):
        srv, workers = self.serve()
        for pid in workers:
            self.assertEqual(proc_stat(pid)[0], srv.pid)
        with open(srv.pid_file) as f:
            self.assertEqual(int(f.read()), srv.pid)
        self.assert_serves(srv)
        srv.wait_log(r"moonpool 0\.1\.0 started, 2 workers")
        for i in range(2):
            srv.wait_log(r"#m: worker %d \(pid \d+\) started" % i)
        self.assertEqual(srv.stop(signal.SIGQUIT), [])
        self.assertEqual(srv.returncode, 0)
        self.assert_all_gone(workers)
        self.assertFalse(os.path.exists(srv.pid_file))
        srv.wait_log(r"graceful stop")
        srv.wait_log(r"#m: exit$")

    def test_lifecycle_term(self):
        srv, workers = self.serve()
        self.assert_serves(srv, 1)
        self.assertEqual(srv.stop(signal.SIGTERM), [])
        self.assertEqual(srv.returncode, 0)
        self.assert_all_gone(workers)
        self.assertFalse(os.path.exists(srv.pid_file))

    def test_lifecycle_signal_quit_via_pid_file(self):
        srv, workers = self.serve()
        rc, _, err = run("-s", "quit", "-c", srv.conf_path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.wait_exit(), 0)
        self.assert_all_gone(workers)

    def test_lifecycle_worker_killed_is_respawned(self):
        srv, workers = self.serve(
            allow_errors=[r"worker \d \(pid \d+\) exited on signal 9"])
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        fresh = srv.wait_workers(2, exclude=[victim])
        self.assertNotIn(victim, fresh)
        self.assertTrue(all(proc_stat(p)[0] == srv.pid for p in fresh))
        srv.wait_log(r"worker \d \(pid %d\) exited on signal 9" % victim)
        self.assert_serves(srv, 8)
        self.assertFalse(pid_alive(victim))
        wait_for(lambda: not zombies_of(srv.pid), 5, "no zombie children")

    def test_lifecycle_master_killed_takes_workers(self):
        srv, workers = self.serve()
        self.assert_serves(srv, 1)
        srv.proc.kill()
        srv.proc.wait(5)
        self.assert_all_gone(workers, timeout=5.0)

    def test_lifecycle_bind_conflict(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = dict(HELLO, servers=[{
            "listen": ["127.0.0.1:%d" % port],
            "locations": [{"match": "/", "content": 'ngx.say("hi")'}]}])
        srv = self.server(cfg, start=False, expect_errors=[
            r"\[emerg\].*bind\(\) to 127\.0\.0\.1:%d failed "
            r"\(98: Address already in use\)" % port])
        srv.start(wait=False)
        self.assertEqual(srv.wait_exit(), 1)
        self.assertEqual(srv.worker_pids(), [])
        self.assertFalse(os.path.exists(srv.pid_file))

    def test_lifecycle_worker_dying_in_loop_backs_off(self):
        # An init_worker error is only logged (OpenResty), so exit for real.
        cfg = dict(HELLO, cluster={"workers": 1},
                   lua={"init_worker": "os.exit(3)"})
        srv = self.server(cfg, start=False, allow_errors=[
            r"worker 0 \(pid \d+\) exited with code 3"])
        srv.start(wait=False)
        srv.wait_log(r"\[warn\].*worker 0 keeps dying, respawning it in "
                     r"\d+ ms", timeout=10)
        # With back-off the master forks rarely: count starts over 1 s.
        mark = srv.log_mark()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self.assertTrue(srv.alive())
            time.sleep(0.05)
        starts = [e for e in srv.log_entries(mark)
                  if re.search(r"worker 0 \(pid \d+\) started", e.text)]
        self.assertLessEqual(len(starts), 3)

    def test_lifecycle_reopen_logs(self):
        srv, _ = self.serve()
        rotated = srv.error_log_path + ".1"
        os.rename(srv.error_log_path, rotated)
        srv.signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(srv.error_log_path), 5,
                 "the error log to be created again")
        with open(rotated) as f:
            self.assertIn("reopening logs", f.read())
        self.assert_serves(srv, 1)

    def test_lifecycle_reload(self):
        srv, old = self.serve(allow_errors=[r"reload failed"])
        srv.write_config(dict(HELLO, servers=[{"locations": [
            {"match": "/", "content": 'ngx.say("v2")'}]}]))
        srv.signal(signal.SIGHUP)
        wait_for(lambda: srv.request("GET", "/").body == b"v2\n", 10,
                 "the new config to serve")
        self.assert_all_gone(old, timeout=10)
        new = srv.wait_workers(2)
        self.assertFalse(set(new) & set(old))

        # A broken config is logged and the running one keeps serving.
        mark = srv.log_mark()
        with open(srv.conf_path, "a") as f:
            f.write("bogus_key: 1\n")
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"\[error\].*reload failed.*moonpool\.yaml:\d+:\d+",
                     since=mark)
        self.assertEqual(srv.request("GET", "/").body, b"v2\n")
        self.assertEqual(sorted(srv.worker_pids()), sorted(new))


if __name__ == "__main__":
    unittest.main()
