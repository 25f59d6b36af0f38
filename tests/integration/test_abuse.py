"""
Abuse limits (issue 7), bounded and on 127.0.0.1 only: thousands of idle
and slowloris connections, cluster.max_connections, client_header_timeout
reclaiming slow clients, response splitting from Lua, header floods and
request-smuggling shapes. Each case also checks that the worker survives
(same pid, still answering).
"""

import resource
import socket
import time

from harness import ServerTestCase, parse_response

METRICS = "ngx.print(require('moonpool.metrics').render())"

CONFIG = {
    "cluster": {"workers": 1},
    "http": {
        "client_header_timeout": "3s",
        "keepalive_timeout": "30s",
        "large_header_buffer": "8k",
    },
    "servers": [{
        "locations": [
            {"match": "= /hello", "content": 'ngx.say("hello")'},
            {"match": "= /metrics", "content": METRICS},
            {"match": "= /hdr-value",
             "content": 'ngx.header["X-A"] = "a\\r\\nSet-Cookie: evil=1"\n'
                        'ngx.say("ok")'},
            {"match": "= /hdr-name",
             "content": 'ngx.header["X-A\\r\\nSet-Cookie"] = "evil"\n'
                        'ngx.say("ok")'},
            {"match": "= /redirect",
             "content": 'return ngx.redirect("/x\\r\\nSet-Cookie: evil=1")'},
        ],
    }],
}


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_idle(port, n):
    """n non-blocking connections that send nothing yet, in batches the
    listen backlog holds (an overflow would wait for SYN retries)."""
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        if i % 100 == 99:
            time.sleep(0.01)
    return socks


def connections(metrics_body, state):
    total = 0
    for line in metrics_body.decode().splitlines():
        if line.startswith("moonpool_connections{") \
                and 'state="%s"' % state in line:
            total += int(float(line.split()[-1]))
    return total


class Abuse(ServerTestCase):
    CONFIG = CONFIG
    ALLOW_ERRORS = (r"invalid header name|invalid redirect uri",)

    @property
    def srv(self):
        return self.shared

    def assert_prompt(self, limit=1.0):
        t = time.monotonic()
        resp = self.srv.request("GET", "/hello", timeout=5)
        took = time.monotonic() - t
        self.assertEqual((resp.status, resp.body), (200, b"hello\n"))
        self.assertLess(took, limit, "answered in %.2fs" % took)

    def open_conns(self):
        body = self.srv.request("GET", "/metrics").body
        return connections(body, "active") + connections(body, "idle")

    def test_slowloris_2000_and_header_timeout(self):
        if raise_nofile(2300) < 2300:
            self.skipTest("RLIMIT_NOFILE too low for 2,000 connections")
        pids = self.srv.worker_pids()
        socks = open_idle(self.srv.port, 2000)
        try:
            deadline = time.monotonic() + 2.5
            while self.open_conns() < 1900 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertGreaterEqual(self.open_conns(), 1900)
            slow = socks[:200]
            t_end = time.monotonic() + 1.6
            sent = 0
            while time.monotonic() < t_end:
                for s in slow:
                    try:
                        s.send(b"GET / HTTP/1.1\r\n"[sent % 16:sent % 16 + 1])
                    except OSError:
                        pass
                sent += 1
                self.assert_prompt()
                time.sleep(0.5)
            # client_header_timeout (3 s) reclaims idle and slow ones alike
            deadline = time.monotonic() + 6
            while self.open_conns() > 5 and time.monotonic() < deadline:
                time.sleep(0.3)
            self.assertLessEqual(self.open_conns(), 5)
            self.assert_prompt()
        finally:
            for s in socks:
                s.close()
        self.assertEqual(self.srv.worker_pids(), pids)

    def test_max_connections_enforced_and_recovers(self):
        srv = self.server(dict(CONFIG,
                               cluster={"workers": 1, "max_connections": 50},
                               http={"client_header_timeout": "30s"}),
                          allow_errors=(r"worker_connections",))
        mark = srv.log_mark()
        socks = open_idle(srv.port, 80)
        try:
            srv.wait_log(r"50 worker_connections are not enough", since=mark,
                         timeout=5)
            # the 81st waits in the backlog: no answer while the worker is full
            with srv.conn(timeout=0.5) as c:
                c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                with self.assertRaises(socket.timeout):
                    c.response()
        finally:
            for s in socks:
                s.close()
        # closing them lets the worker accept again
        deadline = time.monotonic() + 5
        while True:
            try:
                resp = srv.request("GET", "/hello", timeout=2)
                break
            except (socket.timeout, OSError):
                if time.monotonic() > deadline:
                    raise
        self.assertEqual(resp.status, 200)

    # -- response splitting (lua-nginx-module's behaviour)

    def test_crlf_in_header_value_is_escaped(self):
        raw = self.srv.raw(b"GET /hdr-value HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
        resp, _ = parse_response(raw)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("X-A"), "a%0D%0ASet-Cookie: evil=1")
        self.assertIsNone(resp.header("Set-Cookie"))

    def test_crlf_in_header_name_fails(self):
        raw = self.srv.raw(b"GET /hdr-name HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
        resp, _ = parse_response(raw)
        self.assertEqual(resp.status, 500)
        self.assertIsNone(resp.header("Set-Cookie"))

    def test_crlf_in_redirect_uri_fails(self):
        raw = self.srv.raw(b"GET /redirect HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
        resp, _ = parse_response(raw)
        self.assertEqual(resp.status, 500)
        self.assertIsNone(resp.header("Set-Cookie"))

    # -- header floods

    def test_ten_thousand_headers(self):
        pids = self.srv.worker_pids()
        head = b"GET /hello HTTP/1.1\r\nHost: x\r\n" + b"a:\r\n" * 10000
        raw = self.srv.raw(head + b"\r\n")
        resp, _ = parse_response(raw)
        self.assertIn(resp.status, (400, 431))
        self.assertEqual(self.srv.worker_pids(), pids)
        self.assert_prompt()

    # -- request smuggling shapes: 400 and close, as nginx

    def test_smuggling_shapes_are_400(self):
        cases = [
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked, identity\r\n",
            b"X-A: a\r\n folded\r\n",
            b"Content-Length: 5\r\n\tx\r\n",
        ]
        for extra in cases:
            with self.subTest(headers=extra):
                raw = self.srv.raw(b"POST /hello HTTP/1.1\r\nHost: x\r\n"
                                   + extra + b"\r\n0\r\n\r\nhello")
                resp, _ = parse_response(raw)
                self.assertIn(resp.status, (400, 501))
                self.assertIn(b"Connection: close", raw)
        self.assert_prompt()
