"""
HTTP/1.1 behaviour of the worker: keep-alive, pipelining, request bodies,
HEAD, 100-continue, HTTP/1.0, Connection: close, limits and their status
codes, response headers, server and location selection, slow clients.

Where nginx + lua-nginx-module (Debian nginx 1.22.1, libnginx-mod-http-lua)
does something subtle, the comment next to the check says what it did when
the same request was sent to it.
"""

import email.utils
import socket
import time
import unittest

from harness import ServerTestCase, parse_response, IncompleteResponse

ECHO = """
ngx.req.read_body()
local data = ngx.req.get_body_data()
ngx.print(data or "")
"""

BASIC = {
    "http": {
        "client_header_timeout": "1s",
        "client_body_timeout": "1s",
        "keepalive_timeout": "1s",
        "client_max_body_size": "100",
        "large_header_buffer": "1k",
    },
    "servers": [{
        # no "/" location: anything else is a 404
        "locations": [
            {"match": "= /hello", "content": 'ngx.say("hello")'},
            {"match": "= /echo", "content": ECHO},
            {"match": "/uri/", "content": "ngx.say(ngx.var.request_uri)"},
            {"match": "= /big", "content": 'ngx.print(string.rep("x", 100000))'},
        ],
    }],
}


def req(method, path, headers=(), body=b"", version="HTTP/1.1",
        host="test"):
    """Bytes of one request; headers is a list of (name, value)."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpBasics(ServerTestCase):
    CONFIG = BASIC
    # Limits may be logged at [error] like nginx does ("client intended to
    # send too large body"); they are allowed, not required.
    ALLOW_ERRORS = (r"too large|too long|client sent|invalid",)

    @property
    def srv(self):
        return self.shared

    def expect_close(self, data, head=False):
        """Send data on a new connection; the server must answer with one
        whole response and then close. Returns the response."""
        with self.srv.conn() as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # it may answer before reading all of it
            try:
                out = c.read_all(timeout=5)
            except socket.timeout:
                self.fail("server did not close the connection; read %r"
                          % c.buf)
        try:
            resp, rest = parse_response(out, head)
        except (IncompleteResponse, ValueError) as e:
            self.fail("no whole response before EOF (%s): %r" % (e, out))
        self.assertEqual(rest, b"", "bytes after the response: %r" % rest)
        return resp

    # -- basics

    def test_hello(self):
        resp = self.check(self.srv, {"path": "/hello"}, 200, "hello\n",
                          headers={"Content-Type": "text/plain",
                                   "Server": None, "Date": None})
        date = email.utils.parsedate_to_datetime(resp.header("Date"))
        self.assertLess(abs(date.timestamp() - time.time()), 5)
        self.assertTrue(resp.header("Date").endswith(" GMT"))
        # Either framing is fine; nginx answers a Lua handler in chunks.
        self.assertTrue(resp.header("Content-Length") == "6"
                        or resp.header("Transfer-Encoding") == "chunked",
                        resp)

    def test_large_response_body(self):
        resp = self.check(self.srv, {"path": "/big"}, 200)
        self.assertEqual(resp.body, b"x" * 100000)

    def test_no_location_is_404(self):
        # Issue 2: no matching location -> 404. (nginx would fall back to
        # its static-file handler here; moonpool has none.)
        self.check(self.srv, {"path": "/nothing/here"}, 404)
        self.check(self.srv, {"path": "/hello/more"}, 404)
        # the connection used for a 404 stays usable
        with self.srv.conn() as c:
            c.send(req("GET", "/nope"))
            self.assertEqual(c.response().status, 404)
            c.send(req("GET", "/hello"))
            self.assertEqual(c.response().body, b"hello\n")

    def test_half_close_after_request_closes_at_once(self):
        # The client sends a keep-alive request and shuts its side down at
        # once, so its FIN may arrive with the request bytes. The server
        # answers and closes right away instead of holding the connection
        # until keepalive_timeout (1s here).
        import socket as _socket
        s = _socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
        try:
            # a first exchange, so the second request reaches a worker
            # asleep in epoll: request and FIN then wake it as one edge
            s.sendall(req("GET", "/uri/first"))
            first = b""
            while not first.endswith(b"/uri/first\n"):
                first += s.recv(65536)
            t0 = time.monotonic()
            s.sendall(req("GET", "/uri/half"))
            s.shutdown(_socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertTrue(data.endswith(b"/uri/half\n"), data)
        self.assertLess(elapsed, 0.8)  # keepalive_timeout is 1s here

    def test_keepalive_reuse(self):
        with self.srv.conn() as c:
            port = c.local_port()
            for i in range(5):
                c.send(req("GET", "/uri/%d" % i))
                resp = c.response()
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.body, b"/uri/%d\n" % i)
                self.assertNotEqual(
                    (resp.header("Connection") or "").lower(), "close")
                self.assertFalse(c.eof)
            self.assertEqual(c.local_port(), port)

    def test_keepalive_http_client(self):
        conn = self.srv.connection()
        try:
            for i in range(3):
                status, _, body = self.srv.request("GET", "/uri/k%d" % i,
                                                   conn=conn)
                self.assertEqual((status, body), (200, b"/uri/k%d\n" % i))
                if i == 0:
                    sock = conn.sock
                # http.client reconnects silently; the socket must be the
                # same object each time.
                self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_pipelining(self):
        with self.srv.conn() as c:
            c.send(req("GET", "/uri/1") + req("POST", "/echo", [
                ("Content-Length", "3")], b"two") + req("GET", "/uri/3", [
                    ("Connection", "close")]))
            bodies = [c.response().body for _ in range(3)]
            self.assertEqual(bodies, [b"/uri/1\n", b"two", b"/uri/3\n"])
            self.assertEqual(c.read_all(), b"")

    def test_pipelining_split_across_reads(self):
        # The second request arrives in pieces after the first one.
        with self.srv.conn() as c:
            data = req("GET", "/uri/a") + req("GET", "/uri/b")
            cut = len(req("GET", "/uri/a")) + 7
            c.send(data[:cut])
            self.assertEqual(c.response().body, b"/uri/a\n")
            c.send(data[cut:])
            self.assertEqual(c.response().body, b"/uri/b\n")

    def test_pipelining_many(self):
        # 50 requests in one send, some with bodies: all answered, in order.
        data = b""
        for i in range(50):
            if i % 3 == 0:
                body = b"body-%d" % i
                data += req("POST", "/echo", [
                    ("Content-Length", str(len(body)))], body)
            else:
                data += req("GET", "/uri/%d" % i)
        with self.srv.conn() as c:
            c.send(data)
            for i in range(50):
                want = b"body-%d" % i if i % 3 == 0 else b"/uri/%d\n" % i
                self.assertEqual(c.response().body, want)

    def test_pipelining_beyond_buffer(self):
        # 600 requests (~25 KB) in one send: more than the read buffer
        # holds and deeper than the server serves recursively, so it must
        # read again once there is room and resume from the event loop.
        n = 600
        data = b"".join(req("GET", "/uri/%d" % i) for i in range(n))
        self.assertGreater(len(data), 20000)
        with self.srv.conn() as c:
            c.send(data)
            for i in range(n):
                self.assertEqual(c.response().body, b"/uri/%d\n" % i)

    def test_client_abort_mid_request(self):
        # Clients that vanish mid-header or mid-body are not errors.
        for data in (b"GET /hello HTTP/1.1\r\nHost: te",
                     req("POST", "/echo", [("Content-Length", "50")],
                         b"abc")):
            with self.srv.conn() as c:
                c.send(data)
        self.check(self.srv, {"path": "/hello"}, 200, "hello\n")

    # -- request bodies

    def test_body_at_limit(self):
        # exactly client_max_body_size (100) is accepted, in one piece or
        # chunked
        self.check(self.srv, {"method": "POST", "path": "/echo",
                              "body": b"a" * 100}, 200, "a" * 100)
        chunked = b"".join(b"a\r\n" + b"%010d" % i + b"\r\n"
                           for i in range(10)) + b"0\r\n\r\n"
        with self.srv.conn() as c:
            c.send(req("POST", "/echo", [("Transfer-Encoding", "chunked")],
                       chunked))
            resp = c.response()
            self.assertEqual((resp.status, resp.body), (200, b"".join(
                b"%010d" % i for i in range(10))))

    def test_post_content_length(self):
        self.check(self.srv, {"method": "POST", "path": "/echo",
                              "body": b"hello world"}, 200, "hello world")

    def test_post_empty_body(self):
        self.check(self.srv, {"method": "POST", "path": "/echo",
                              "body": b""}, 200, "")

    def test_post_chunked(self):
        with self.srv.conn() as c:
            c.send(req("POST", "/echo", [("Transfer-Encoding", "chunked")]))
            c.send(b"5\r\nhello\r\n")
            c.send(b"6;ext=1\r\n world\r\n")  # chunk extensions are legal
            c.send(b"0\r\n\r\n")
            resp = c.response()
            self.assertEqual((resp.status, resp.body), (200, b"hello world"))
            # and the connection is still good for the next request
            c.send(req("GET", "/hello"))
            self.assertEqual(c.response().body, b"hello\n")

    def test_post_chunked_with_trailer(self):
        with self.srv.conn() as c:
            c.send(req("POST", "/echo", [("Transfer-Encoding", "chunked")],
                       b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"))
            self.assertEqual(c.response().body, b"abc")
            c.send(req("GET", "/hello"))
            self.assertEqual(c.response().body, b"hello\n")

    def test_body_not_read_by_handler_is_discarded(self):
        # /hello does not read the body; the next request on the connection
        # must not be parsed out of it.
        with self.srv.conn() as c:
            c.send(req("POST", "/hello", [("Content-Length", "20")],
                       b"GET /uri/x HTTP/1.1\r"))
            self.assertEqual(c.response().body, b"hello\n")
            c.send(req("GET", "/uri/next"))
            self.assertEqual(c.response().body, b"/uri/next\n")

    def test_head(self):
        with self.srv.conn() as c:
            c.send(req("HEAD", "/hello"))
            resp = c.response(head=True)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.header("Content-Type"), "text/plain")
            # no body bytes: the next response must start right away
            c.send(req("GET", "/uri/after-head"))
            resp = c.response()
            self.assertEqual(resp.body, b"/uri/after-head\n")

    def test_expect_100_continue(self):
        # nginx answers "HTTP/1.1 100 Continue\r\n\r\n" before the body is
        # sent, then the response.
        with self.srv.conn() as c:
            c.send(req("POST", "/echo", [("Content-Length", "5"),
                                          ("Expect", "100-continue")]))
            deadline = time.monotonic() + 3
            while b"\r\n\r\n" not in c.buf and time.monotonic() < deadline:
                if not c._fill():
                    break
            self.assertEqual(c.buf, b"HTTP/1.1 100 Continue\r\n\r\n")
            c.buf = b""
            c.send(b"hello")
            resp = c.response()
            self.assertEqual((resp.status, resp.body), (200, b"hello"))

    # -- connection handling

    def test_http10_closes(self):
        resp = self.expect_close(req("GET", "/hello", version="HTTP/1.0",
                                     host=None))
        self.assertEqual((resp.status, resp.body), (200, b"hello\n"))
        # HTTP/1.0 has no chunked coding
        self.assertIsNone(resp.header("Transfer-Encoding"))

    def test_http10_keepalive(self):
        # nginx: "Connection: keep-alive" in the answer, a Content-Length
        # (lua_http10_buffering), and the connection stays open.
        with self.srv.conn() as c:
            for i in range(2):
                c.send(req("GET", "/uri/%d" % i, [
                    ("Connection", "keep-alive")], version="HTTP/1.0"))
                resp = c.response()
                self.assertEqual(resp.body, b"/uri/%d\n" % i)
                self.assertEqual(resp.header("Content-Length"),
                                 str(len(resp.body)))
                self.assertEqual(resp.header("Connection").lower(),
                                 "keep-alive")
                self.assertIsNone(resp.header("Transfer-Encoding"))
            self.assertFalse(c.closed(0.2))

    def test_connection_close(self):
        resp = self.expect_close(req("GET", "/hello",
                                     [("Connection", "close")]))
        self.assertEqual((resp.status, resp.body), (200, b"hello\n"))
        self.assertEqual(resp.header("Connection").lower(), "close")

    # -- limits: each answers and closes cleanly

    def test_uri_too_long_414(self):
        # nginx: 414 "Request-URI Too Large" for a request line longer than
        # large_client_header_buffers.
        resp = self.expect_close(req("GET", "/uri/" + "a" * 2000))
        self.assertEqual(resp.status, 414)

    def test_header_too_large_431(self):
        # nginx answers 400 ("Request Header Or Cookie Too Large");
        # moonpool uses 431 (RFC 6585), as issue 2 says.
        resp = self.expect_close(req("GET", "/hello",
                                     [("X-Big", "a" * 2000)]))
        self.assertEqual(resp.status, 431)

    def test_headers_too_large_in_total_431(self):
        # Each header fits the buffer, together they do not.
        # nginx (large_client_header_buffers 4 1k): 400, as above.
        resp = self.expect_close(req("GET", "/hello", [
            ("X-H%d" % i, "a" * 900) for i in range(8)]))
        self.assertEqual(resp.status, 431)

    def test_body_too_large_413(self):
        # nginx: 413 and "[error] client intended to send too large body"
        resp = self.expect_close(req("POST", "/echo", [
            ("Content-Length", "200")], b"a" * 200))
        self.assertEqual(resp.status, 413)

    def test_body_too_large_413_without_reading_handler(self):
        # nginx checks the Content-Length even when the handler does not
        # read the body.
        resp = self.expect_close(req("POST", "/hello", [
            ("Content-Length", "200")], b"a" * 200))
        self.assertEqual(resp.status, 413)

    def test_chunked_body_too_large_413(self):
        # nginx: 413, "client intended to send too large chunked body"
        resp = self.expect_close(req("POST", "/echo", [
            ("Transfer-Encoding", "chunked")],
            b"40\r\n" + b"a" * 64 + b"\r\n40\r\n" + b"b" * 64
            + b"\r\n0\r\n\r\n"))
        self.assertEqual(resp.status, 413)

    def test_malformed_400(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET /hello HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n",
            req("POST", "/echo", [("Content-Length", "abc")]),
            req("POST", "/echo", [("Transfer-Encoding", "chunked")],
                b"zz\r\nabc\r\n0\r\n\r\n"),
            # RFC 7230 5.4: HTTP/1.1 without Host is a 400 (nginx: 400)
            req("GET", "/hello", host=None),
            # nginx: 400 for Content-Length with Transfer-Encoding
            # (request smuggling guard)
            req("POST", "/echo", [("Content-Length", "3"),
                                  ("Transfer-Encoding", "chunked")],
                b"3\r\nabc\r\n0\r\n\r\n"),
            # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means
            # faulty framing (nginx: 400)
            req("POST", "/echo", [("Transfer-Encoding", "chunked")],
                b"5\r\nhello\r\n0\r\n\r\n", version="HTTP/1.0",
                host=None),
            # nginx: 400 "client sent invalid host header"
            req("GET", "/hello", host="bad host"),
        ]
        for data in cases:
            with self.subTest(request=data[:60]):
                resp = self.expect_close(data)
                self.assertEqual(resp.status, 400)

    def test_unsupported_transfer_coding_501(self):
        # nginx: 501 for "gzip" and for "gzip, chunked"
        for te in ("gzip", "gzip, chunked"):
            with self.subTest(te=te):
                resp = self.expect_close(req("POST", "/echo", [
                    ("Transfer-Encoding", te)], b"0\r\n\r\n"))
                self.assertEqual(resp.status, 501)

    def test_error_on_keepalive_connection_closes(self):
        # A limit hit on the 2nd request of a connection: answered, closed.
        with self.srv.conn() as c:
            c.send(req("GET", "/hello"))
            self.assertEqual(c.response().status, 200)
            c.send(req("POST", "/echo", [("Content-Length", "500")],
                       b"a" * 500))
            self.assertEqual(c.response().status, 413)
            self.assertEqual(c.read_all(), b"")

    def test_still_serving_after_errors(self):
        for data in (b"GARBAGE\r\n\r\n", req("GET", "/" + "a" * 3000)):
            self.srv.raw(data)
        self.check(self.srv, {"path": "/hello"}, 200, "hello\n")

    # -- slow clients

    def test_client_header_timeout(self):
        # A client that sends half a header is closed after about
        # client_header_timeout (1s) while others are served meanwhile.
        # nginx closes without an answer (408 is not sent); a 408 is
        # accepted too.
        with self.srv.conn() as slow:
            slow.send(b"GET /hello HTTP/1.1\r\nHost: te")
            t0 = time.monotonic()
            for i in range(3):
                t = time.monotonic()
                self.check(self.srv, {"path": "/hello"}, 200, "hello\n")
                self.assertLess(time.monotonic() - t, 0.5)
            out = slow.read_all(timeout=4)
            elapsed = time.monotonic() - t0
            self.assertGreater(elapsed, 0.7)
            self.assertLess(elapsed, 3.0)
            if out:
                self.assertEqual(parse_response(out)[0].status, 408)

    def test_client_body_timeout(self):
        # nginx: the body read times out after client_body_timeout; it
        # answers 408 and closes. Only the close is required here.
        self.allow_log(r"timed out|timeout")
        with self.srv.conn() as slow:
            slow.send(req("POST", "/echo", [("Content-Length", "10")],
                          b"ab"))
            t0 = time.monotonic()
            self.check(self.srv, {"path": "/hello"}, 200, "hello\n")
            out = slow.read_all(timeout=4)
            elapsed = time.monotonic() - t0
            self.assertGreater(elapsed, 0.7)
            self.assertLess(elapsed, 3.0)
            if out:
                self.assertEqual(parse_response(out)[0].status, 408)

    def test_keepalive_timeout(self):
        with self.srv.conn() as c:
            c.send(req("GET", "/hello"))
            self.assertEqual(c.response().status, 200)
            t0 = time.monotonic()
            self.assertEqual(c.read_all(timeout=4), b"")
            elapsed = time.monotonic() - t0
            self.assertGreater(elapsed, 0.7)
            self.assertLess(elapsed, 3.0)


def says(name):
    return 'ngx.say("%s")' % name


HOSTS = {
    "servers": [
        {"server_names": ["default.test"],
         "locations": [{"match": "/", "content": says("A default")}]},
        {"server_names": ["example.com"],
         "locations": [{"match": "/", "content": says("B exact")}]},
        {"server_names": ["*.example.com"],
         "locations": [{"match": "/", "content": says("C wildcard")}]},
        # exact beats wildcard even when listed after it
        {"server_names": ["www.example.com"],
         "locations": [{"match": "/", "content": says("D www")}]},
    ],
}


class ServerSelection(ServerTestCase):
    CONFIG = HOSTS

    def test_by_host(self):
        # Same answers from nginx with the same four server blocks.
        cases = [
            ("example.com", "B exact"),
            ("EXAMPLE.com", "B exact"),
            ("example.com:8080", "B exact"),
            ("a.example.com", "C wildcard"),
            ("a.b.example.com", "C wildcard"),
            ("www.example.com", "D www"),
            ("default.test", "A default"),
            ("other.org", "A default"),
            ("example.com.org", "A default"),
            ("xexample.com", "A default"),
        ]
        for host, who in cases:
            with self.subTest(host=host):
                self.check(self.shared, {"path": "/", "headers": {
                    "Host": host}}, 200, who + "\n")

    def test_no_host_http10_goes_to_default(self):
        data = self.shared.raw(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(parse_response(data)[0].body, b"A default\n")


LOCATIONS = {
    "servers": [{
        "locations": [
            {"match": "/", "content": says("root prefix")},
            {"match": "= /exact", "content": says("exact")},
            {"match": "/exact", "content": says("prefix exact")},
            {"match": "/static/", "content": says("prefix static")},
            {"match": "/static/img/", "content": says("prefix static img")},
            {"match": "^~ /assets/", "content": says("stop assets")},
            {"match": r"~ \.php$", "content": says("regex php")},
            {"match": r"~* \.(png|jpg)$", "content": says("regex img icase")},
            {"match": r"~ ^/static/.*\.css$", "content": says("regex css")},
            {"match": r"~ ^/static/.*\.php$", "content": says("regex php 2")},
        ],
    }],
}


class LocationSelection(ServerTestCase):
    CONFIG = LOCATIONS

    def test_nginx_order(self):
        # Same answers from nginx with the same locations.
        cases = [
            ("/exact", "exact"),
            ("/exact/more", "prefix exact"),
            ("/exactly", "prefix exact"),
            ("/static/a.txt", "prefix static"),
            ("/static/img/a.txt", "prefix static img"),  # longest prefix
            ("/static/a.css", "regex css"),       # regex beats prefix
            ("/static/img/a.png", "regex img icase"),
            ("/assets/a.php", "stop assets"),      # ^~ skips regexes
            ("/x/a.php", "regex php"),
            ("/static/x.php", "regex php"),        # first regex in order
            ("/x/A.PNG", "regex img icase"),       # ~* ignores case
            ("/x/a.PHP", "root prefix"),           # ~ does not
            ("/exact?x=1", "exact"),               # args are not the URI
            ("/", "root prefix"),
        ]
        for uri, who in cases:
            with self.subTest(uri=uri):
                self.check(self.shared, {"path": uri}, 200, who + "\n")


if __name__ == "__main__":
    unittest.main()
