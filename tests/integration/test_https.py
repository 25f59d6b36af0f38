"""
HTTPS listeners: servers[].tls on OpenSSL.

The test makes its own PKI with the openssl CLI: a CA, and two server
certificates for a.test and b.test signed by it (a.test's file holds the
chain: leaf, then the CA). Two servers share one 127.0.0.1 port with tls;
Python's ssl module is the client, verifying against the CA:

- SNI picks each server's certificate; an unknown name gets the default
  server's (the first one listed)
- HTTP over TLS: keep-alive, a POST body, a 1 MB response read whole,
  ngx.var.https / scheme / ssl_protocol / ssl_server_name
- ALPN selects http/1.1; a client offering only h2 is refused with an
  alert (nginx does the same)
- HUP: the new generation builds its contexts and serves
- a saved session resumes on a new connection (two workers: the ticket
  keys are made by the master, so either worker resumes it)
- TLS 1.1 and older are refused
- plain HTTP on the TLS port gets nginx's 400 "The plain HTTP request was
  sent to HTTPS port" and a close; garbage is closed; a silent client is
  closed after client_header_timeout; the workers keep serving
- "moonpool -t" rejects a key that does not match its certificate and an
  unreadable certificate, naming the file:line:column of the value
"""

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

from harness import BIN, Conn, Server, ServerTestCase, to_yaml

NAMES = ("a.test", "b.test")


def openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """CA plus one EC key and certificate per name in d; returns paths."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=moonpool test CA", "-keyout", "ca.key",
            "-out", "ca.pem", cwd=d)
    paths = {"ca": os.path.join(d, "ca.pem")}
    for name in NAMES:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % name)
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                "/CN=" + name, "-keyout", name + ".key", "-out",
                name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".crt", cwd=d)
        paths[name] = (os.path.join(d, name + ".crt"),
                       os.path.join(d, name + ".key"))
    # a.test's certificate file carries the chain
    chain = os.path.join(d, "a.test.chain.pem")
    with open(chain, "w") as out:
        for part in (paths["a.test"][0], paths["ca"]):
            with open(part) as f:
                out.write(f.read())
    paths["a.test"] = (chain, paths["a.test"][1])
    return paths


CONTENT = r'''
local v = ngx.var
ngx.say(SERVER, " https=", v.https, " scheme=", v.scheme,
        " proto=", v.ssl_protocol, " sni=", tostring(v.ssl_server_name),
        " reused=", v.ssl_session_reused)
'''

ECHO = r'''
ngx.req.read_body()
ngx.print(ngx.req.get_body_data() or "")
'''


def server_conf(name, cert, key):
    return {
        "listen": ["127.0.0.1:{port}"],
        "server_names": [name],
        "tls": {"certificate": cert, "key": key},
        "locations": [
            {"match": "= /", "content": "SERVER = %r\n%s" % (name, CONTENT)},
            {"match": "= /echo", "content": ECHO},
            {"match": "= /big", "content":
                'ngx.print(string.rep("0123456789abcdef", 65536))'},
        ],
    }


def client_ctx(ca, alpn=None):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class HttpsTest(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="moonpool-pki-")
        try:
            cls.pki = make_pki(cls.pki_dir)
        except (OSError, subprocess.CalledProcessError) as e:
            shutil.rmtree(cls.pki_dir, ignore_errors=True)
            raise unittest.SkipTest("openssl CLI failed: %s" % e)
        cls.CONFIG = {
            "cluster": {"workers": 2},
            "http": {"client_header_timeout": "1s"},
            "servers": [server_conf(n, *cls.pki[n]) for n in NAMES],
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.pki_dir, ignore_errors=True)

    # -- helpers

    def tls_conn(self, name, ctx=None, session=None):
        ctx = ctx or client_ctx(self.pki["ca"])
        raw = socket.create_connection(("127.0.0.1", self.shared.port), 5)
        return ctx.wrap_socket(raw, server_hostname=name, session=session)

    def https(self, name, ctx=None):
        return http.client.HTTPSConnection(
            "127.0.0.1", self.shared.port, timeout=5,
            context=_SniContext(ctx or client_ctx(self.pki["ca"]), name))

    @staticmethod
    def get(sock, path="/", host="a.test"):
        sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                      % (path, host)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return head, body

    def wait_info(self, pattern):
        """The server logged pattern (at info) during this test."""
        self.shared.wait_log(pattern, since=self._mark)

    def assert_serving(self):
        for name in NAMES:
            with self.tls_conn(name) as s:
                head, body = self.get(s, host=name)
                self.assertIn(b" 200 ", head.split(b"\r\n")[0])
                self.assertTrue(body.startswith(name.encode()), body)

    # -- tests

    def test_sni_picks_certificate(self):
        for name in NAMES:
            with self.tls_conn(name) as s:
                subject = dict(x[0] for x in s.getpeercert()["subject"])
                self.assertEqual(subject["commonName"], name)
                head, body = self.get(s, host=name)
                self.assertTrue(body.startswith(name.encode()), body)
                self.assertIn(("sni=%s" % name).encode(), body)
        # an unknown name (and no name) get the default server: a.test
        ctx = client_ctx(self.pki["ca"])
        ctx.check_hostname = False
        for sni in ("c.test", None):
            with self.tls_conn(sni, ctx) as s:
                subject = dict(x[0] for x in s.getpeercert()["subject"])
                self.assertEqual(subject["commonName"], "a.test")

    def test_http_over_tls(self):
        conn = self.https("b.test")
        try:
            for _ in range(3):  # keep-alive: one TLS connection
                conn.request("GET", "/", headers={"Host": "b.test"})
                r = conn.getresponse()
                body = r.read().decode()
                self.assertEqual(r.status, 200)
                self.assertRegex(body, r"^b\.test https=on scheme=https "
                                 r"proto=TLSv1\.3 sni=b\.test reused=\.\n$")
            sock = conn.sock
            # a body of several records (it must fit the header buffer
            # for now: bigger bodies stall on plain HTTP too)
            payload = os.urandom(6000)
            conn.request("POST", "/echo", body=payload,
                         headers={"Host": "b.test"})
            r = conn.getresponse()
            self.assertEqual(r.read(), payload)
            conn.request("GET", "/big", headers={"Host": "b.test"})
            r = conn.getresponse()
            big = r.read()
            self.assertEqual(len(big), 1 << 20)
            self.assertEqual(big, b"0123456789abcdef" * 65536)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_tls12(self):
        ctx = client_ctx(self.pki["ca"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.tls_conn("a.test", ctx) as s:
            self.assertEqual(s.version(), "TLSv1.2")
            head, body = self.get(s)
            self.assertIn(b"proto=TLSv1.2", body)

    def test_alpn(self):
        ctx = client_ctx(self.pki["ca"], ["h2", "http/1.1"])
        with self.tls_conn("a.test", ctx) as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            self.get(s)
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            with self.tls_conn("a.test", client_ctx(self.pki["ca"],
                                                    ["h2"])) as s:
                self.get(s)
        self.wait_info("no application protocol")
        self.assert_serving()

    def test_session_resumption(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(self.pki["ca"])
            ctx.maximum_version = version
            with self.tls_conn("a.test", ctx) as s:
                self.get(s)  # TLS 1.3 tickets arrive after the handshake
                session = s.session
                self.assertFalse(s.session_reused)
            # several times: with two workers, both get to resume it
            for _ in range(4):
                with self.tls_conn("a.test", ctx, session) as s:
                    self.assertTrue(s.session_reused, version)
                    head, body = self.get(s)
                    self.assertIn(b"reused=r", body)

    def test_old_protocols_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            self.skipTest("client cannot offer TLS 1.1: %s" % e)
        with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
            with self.tls_conn("a.test", ctx) as s:
                self.get(s)
        # the refusal must come from the server, not the local library
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception))
        self.wait_info("unsupported protocol")
        self.assert_serving()

    def test_plain_http_to_tls_port(self):
        data = self.shared.raw("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 Bad Request\r\n"),
                        data)
        self.assertIn(b"Connection: close", head)
        self.assertIn(b"The plain HTTP request was sent to HTTPS port",
                      body)
        self.wait_info("sent plain HTTP request to HTTPS port")
        self.assert_serving()

    def test_garbage_closed(self):
        pids = self.shared.worker_pids()
        for junk in (b"\x16\x03\x01\x00\x10" + b"\xff" * 16,
                     b"\x16\x03\x03\x40\x00" + os.urandom(300),
                     b"\x00\x01\x02\x03 not tls at all",
                     # not 0x16, not an upper-case letter (plain HTTP)
                     b"\x01" + os.urandom(2000)):
            with Conn(self.shared.port) as c:
                c.send(junk)
                # closed (perhaps after a TLS alert), never answered
                data = c.read_all(3.0)
                self.assertNotIn(b"HTTP/1.1", data)
        # a client that stops in the middle of a handshake
        with Conn(self.shared.port) as c:
            c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_all(3.0), b"")
        self.assert_serving()
        self.assertEqual(self.shared.worker_pids(), pids)

    def test_reload(self):
        """HUP builds the contexts again; the new workers serve TLS."""
        old = self.shared.worker_pids()
        self.shared.signal(signal.SIGHUP)
        self.shared.wait_log("reloaded", since=self._mark, timeout=10)
        self.shared.wait_workers(2, exclude=old)
        self.assert_serving()

    def test_handshake_timeout(self):
        start = time.monotonic()
        with Conn(self.shared.port) as c:
            self.assertTrue(c.closed(4.0))
        self.assertLess(time.monotonic() - start, 3.5)
        self.assert_serving()


class _SniContext:
    """An SSLContext proxy that fixes server_hostname (http.client passes
    the host it connects to, 127.0.0.1)."""

    def __init__(self, ctx, name):
        self._ctx = ctx
        self._name = name

    def wrap_socket(self, sock, server_hostname=None, **kw):
        return self._ctx.wrap_socket(sock, server_hostname=self._name, **kw)

    def __getattr__(self, attr):
        return getattr(self._ctx, attr)


class ConfigCheckTest(unittest.TestCase):
    """moonpool -t: TLS mistakes are config errors with a position."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="moonpool-pki-")
        try:
            cls.pki = make_pki(cls.dir)
        except (OSError, subprocess.CalledProcessError) as e:
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise unittest.SkipTest("openssl CLI failed: %s" % e)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, servers):
        path = os.path.join(self.dir, "moonpool.yaml")
        text = to_yaml({"servers": servers})
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([BIN, "-t", "-c", path], capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stderr, text, path

    @staticmethod
    def position(text, needle, nth=0):
        """1-based line and column of the value after the nth needle."""
        lines = text.split("\n")
        seen = 0
        for i, line in enumerate(lines):
            col = line.find(needle)
            if col >= 0:
                if seen == nth:
                    return i + 1, col + len(needle) + 1
                seen += 1
        raise AssertionError("%r not in config" % needle)

    def conf(self, name, cert, key):
        return {"listen": ["127.0.0.1:1"], "server_names": [name],
                "tls": {"certificate": cert, "key": key},
                "locations": [{"match": "/", "content": "ngx.say(1)"}]}

    def test_good_config(self):
        rc, err, _, _ = self.check([self.conf(n, *self.pki[n])
                                    for n in NAMES])
        self.assertEqual(rc, 0, err)

    def test_key_mismatch(self):
        a_cert, _ = self.pki["a.test"]
        b_cert, b_key = self.pki["b.test"]
        _, a_key = self.pki["a.test"]
        rc, err, text, path = self.check([
            self.conf("a.test", a_cert, a_key),
            self.conf("b.test", b_cert, a_key)])
        self.assertEqual(rc, 1, err)
        line, col = self.position(text, "key: ", nth=1)
        self.assertIn("%s:%d:%d: key \"%s\" does not match certificate"
                      % (path, line, col, a_key), err)

    def test_unreadable_paths(self):
        cert, key = self.pki["b.test"]
        missing = os.path.join(self.dir, "missing.pem")
        rc, err, text, path = self.check([self.conf("b.test", missing,
                                                    key)])
        self.assertEqual(rc, 1, err)
        line, col = self.position(text, "certificate: ")
        self.assertIn("%s:%d:%d: open() \"%s\" failed (2: " % (
            path, line, col, missing), err)
        rc, err, text, path = self.check([self.conf("b.test", cert,
                                                    missing)])
        self.assertEqual(rc, 1, err)
        line, col = self.position(text, "key: ")
        self.assertIn("%s:%d:%d: open() \"%s\" failed" % (
            path, line, col, missing), err)
        # not a PEM certificate at all
        rc, err, text, path = self.check([self.conf("b.test", key, key)])
        self.assertEqual(rc, 1, err)
        line, col = self.position(text, "certificate: ")
        self.assertIn("%s:%d:%d: cannot load certificate" % (
            path, line, col), err)


if __name__ == "__main__":
    unittest.main()
