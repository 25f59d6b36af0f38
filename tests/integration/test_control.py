"""
test_control.py: the control socket next to the pid file, "moonpool status"
and "moonpool profile" (LuaJIT's sampler in every worker, folded stacks
merged by the master).
"""

import os
import re
import stat
import subprocess
import threading
import time
import unittest

from harness import BIN, Server, ServerTestCase

BUSY = """
local function busy_loop(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end
ngx.say(busy_loop(200000))
"""

CONFIG = {
    "cluster": {"workers": 2},
    "shared_dicts": {"cache": "1m"},
    "servers": [{
        "locations": [
            {"match": "= /fill", "content":
                'for i = 1, 50 do ngx.shared.cache:set("k" .. i, '
                'string.rep("v", 2000)) end ngx.say("filled")'},
            {"match": "= /busy", "content": BUSY},
            {"match": "/", "content": 'ngx.say("hi")'},
        ],
    }],
}

FOLDED_LINE = re.compile(r"^.+ \d+$")


def cli(*args, timeout=60):
    """Runs the binary; returns (exit status, stdout, stderr)."""
    p = subprocess.run([BIN] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Load:
    """A few threads requesting path until stopped (bounded by seconds)."""

    def __init__(self, srv, path, seconds, threads=3):
        self.srv, self.path = srv, path
        self.deadline = time.monotonic() + seconds
        self.count = 0
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run)
                        for _ in range(threads)]

    def run(self):
        while time.monotonic() < self.deadline:
            try:
                status = self.srv.request("GET", self.path).status
            except OSError as e:
                with self.lock:
                    self.errors.append(repr(e))
                continue
            with self.lock:
                self.count += 1
                if status != 200:
                    self.errors.append(status)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        for t in self.threads:
            t.join(30)


class Control(ServerTestCase):
    CONFIG = CONFIG

    def test_status_lists_workers_and_dicts(self):
        srv = self.shared
        pids = srv.wait_workers(2)
        self.assertEqual(srv.request("GET", "/fill").body, b"filled\n")
        rc, out, err = cli("status", "-c", srv.conf_path)
        self.assertEqual(rc, 0, err)
        self.assertIn("master pid %d, generation 1" % srv.proc.pid, out)
        self.assertIn("config: %s" % os.path.realpath(srv.conf_path), out)
        rows = {}
        for line in out.splitlines():
            m = re.match(r"^\s+(\d+)\s+(\d+)\s+1\s+(\w+)\s+(\S+)\s+(\d+)\s+"
                         r"([\d.]+ \w+)", line)
            if m:
                rows[int(m.group(2))] = m.groups()
        self.assertEqual(sorted(rows), sorted(pids), out)
        self.assertEqual({r[0] for r in rows.values()}, {"0", "1"}, out)
        # the /fill request was counted by one of them
        self.assertGreaterEqual(sum(int(r[4]) for r in rows.values()), 1)
        m = re.search(r"^\s+cache\s+1\.0 MiB\s+[\d.]+ \w+\s+(\d+)\s+"
                      r"(\d+\.\d)%$", out, re.M)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), 50)
        self.assertGreater(float(m.group(2)), 0.0)

    def test_control_socket_is_private(self):
        st = os.stat(self.shared.pid_file + ".sock")
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_profile_finds_the_busy_function(self):
        srv = self.shared
        srv.wait_workers(2)
        out = os.path.join(srv.prefix, "busy.folded")
        seconds = 2
        with Load(srv, "/busy", seconds + 1) as load:
            time.sleep(0.2)  # the load is on before sampling starts
            rc, _, err = cli("profile", "-c", srv.conf_path, "--seconds",
                             str(seconds), "-o", out)
        self.assertEqual(rc, 0, err)
        self.assertIn("2 of 2 workers answered", err)
        self.assertEqual(load.errors, [])
        self.assertGreater(load.count, 0)
        with open(out) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, FOLDED_LINE)
        counts = [(int(line.rsplit(" ", 1)[1]), line) for line in lines]
        self.assertEqual(counts, sorted(counts, key=lambda c: -c[0]))
        total = sum(c for c, _ in counts)
        busy = sum(c for c, line in counts if "busy_loop" in line)
        # the hottest stack is the busy function, and it dominates
        self.assertIn("busy_loop", counts[0][1], lines[:5])
        self.assertGreater(busy, total / 2, lines[:5])
        self.assertFalse(os.path.exists(out + ".part"))

    def test_profile_lua_c_mode_and_bad_arguments(self):
        srv = self.shared
        out = os.path.join(srv.prefix, "c.folded")
        with Load(srv, "/busy", 2, threads=2):
            rc, _, err = cli("profile", "-c", srv.conf_path, "--seconds",
                             "1", "--mode", "lua+c", "-o", out)
        self.assertEqual(rc, 0, err)
        with open(out) as f:
            for line in f:
                self.assertRegex(line.rstrip("\n"), FOLDED_LINE)
        for args, why in (
                (["--seconds", "1", "--mode", "perl", "-o", out],
                 "invalid --mode"),
                (["--seconds", "0", "-o", out], "invalid --seconds"),
                (["--seconds", "1"], "needs -o")):
            rc, _, err = cli("profile", "-c", srv.conf_path, *args)
            self.assertEqual(rc, 1, args)
            self.assertIn(why, err)

    def test_a_client_that_leaves_cancels_its_profile(self):
        srv = self.shared
        out = os.path.join(srv.prefix, "gone.folded")
        p = subprocess.Popen([BIN, "profile", "-c", srv.conf_path,
                              "--seconds", "600", "-o", out],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            srv.wait_log(r"profile \d+ \(lua\) of 2 workers")
            mark = srv.log_mark()
        finally:
            p.kill()
            p.wait(10)
        srv.wait_log(r"profile \d+ cancelled: the client left", since=mark)
        # the workers stopped sampling: a new profile is accepted at once
        rc, _, err = cli("profile", "-c", srv.conf_path, "--seconds", "1",
                         "-o", out)
        self.assertEqual(rc, 0, err)
        self.assertIn("2 of 2 workers answered", err)


class NoMaster(ServerTestCase):

    def test_status_and_profile_fail_without_a_master(self):
        srv = self.server(CONFIG)
        sock = srv.pid_file + ".sock"
        srv.wait_workers(2)
        self.assertTrue(os.path.exists(sock))
        self.assertEqual(srv.stop(), [])
        self.assertFalse(os.path.exists(sock), "socket left after exit")
        rc, out, err = cli("status", "-c", srv.conf_path)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("is moonpool running?", err)
        folded = os.path.join(srv.prefix, "none.folded")
        rc, _, err = cli("profile", "-c", srv.conf_path, "--seconds", "1",
                         "-o", folded)
        self.assertEqual(rc, 1)
        self.assertIn("profile failed", err)
        self.assertIn("is moonpool running?", err)
        self.assertFalse(os.path.exists(folded))
        self.assertFalse(os.path.exists(folded + ".part"))

    def test_config_without_pid_file(self):
        srv = self.server(start=False)
        path = os.path.join(srv.prefix, "nopid.yaml")
        with open(path, "w") as f:
            f.write("servers:\n  - listen: [\"127.0.0.1:%d\"]\n"
                    "    locations:\n      - match: /\n"
                    "        content: ngx.say(1)\n" % srv.port)
        rc, _, err = cli("status", "-c", path)
        self.assertEqual(rc, 1)
        self.assertIn("sets no cluster.pid_file", err)
        self.assertIn("no control socket", err)


if __name__ == "__main__":
    unittest.main()
