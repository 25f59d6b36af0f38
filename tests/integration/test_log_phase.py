"""
test_log_phase.py: the log phase may wait (moonpool extension; OpenResty
disables yielding there): a log handler that sleeps (or ships its line over
a cosocket) runs after the response went out, and the connection goes on
with its next request once it ends.
"""

import time
import unittest

from harness import ServerTestCase

CONFIG = {
    "cluster": {"workers": 1},
    "shared_dicts": {"logs": "1m"},
    "servers": [{
        "listen": ["127.0.0.1:{port}"],
        "locations": [
            {"match": "= /work",
             "content": 'ngx.say("done")',
             "log": 'ngx.sleep(0.6)\n'
                    'ngx.shared.logs:incr("shipped", 1, 0)'},
            {"match": "= /count",
             "content": 'ngx.say(ngx.shared.logs:get("shipped") or 0)'},
            {"match": "= /say_in_log",
             "content": 'ngx.say("x")',
             "log": 'local ok, err = pcall(ngx.say, "y")\n'
                    'ngx.shared.logs:set("say_err", err)'},
            {"match": "= /say_err",
             "content": 'ngx.say(ngx.shared.logs:get("say_err"))'},
        ],
    }],
}


class LogPhaseMayWait(ServerTestCase):
    CONFIG = CONFIG

    def test_response_first_then_log_then_next_request(self):
        base = int(self.shared.request("GET", "/count").body)
        with self.shared.conn() as c:
            t0 = time.time()
            c.send(b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.response().body, b"done\n")
            # the response did not wait for the log handler's sleep
            self.assertLess(time.time() - t0, 0.45)
            # the next request on this connection is served after it
            c.send(b"GET /count HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(int(c.response().body), base + 1)
            # (the server times the sleep from its cached clock: allow slack)
            self.assertGreaterEqual(time.time() - t0, 0.5)

    def test_output_still_disabled_in_log(self):
        # OpenResty: "API disabled in the context of log_by_lua*"
        self.shared.request("GET", "/say_in_log")
        deadline = time.time() + 3
        body = b""
        while time.time() < deadline:
            body = self.shared.request("GET", "/say_err").body
            if body != b"nil\n":
                break
            time.sleep(0.05)
        self.assertIn(b"API disabled in the context of log_by_lua*", body)


LOG_CONTEXT = {
    "cluster": {"workers": 1},
    "servers": [{
        "listen": ["127.0.0.1:{port}"],
        "locations": [
            {"match": "= /a", "content":
                'ngx.sleep(0.3)\n'
                'ngx.log(ngx.WARN, "after sleep A")\n'
                'ngx.say("a")'},
            {"match": "= /b", "content":
                'ngx.log(ngx.WARN, "in B")\n'
                'ngx.timer.at(0, function()\n'
                '  ngx.log(ngx.WARN, "in timer")\n'
                'end)\n'
                'ngx.say("b")'},
        ],
    }],
}


class LogContext(ServerTestCase):
    """Each error-log line names the request it belongs to, even after a
    wait during which other requests ran; timer lines say so (nginx's
    ", context: ngx.timer")."""

    CONFIG = LOG_CONTEXT

    def test_context_follows_the_thread(self):
        import threading
        mark = self.shared.log_mark()
        t = threading.Thread(
            target=lambda: self.shared.request("GET", "/a"))
        t.start()
        time.sleep(0.1)
        self.assertEqual(self.shared.request("GET", "/b").body, b"b\n")
        t.join(5)
        after = self.shared.wait_log(r"after sleep A", since=mark)
        self.assertIn('request: "GET /a HTTP/1.1"', str(after))
        timer = self.shared.wait_log(r"in timer", since=mark)
        self.assertIn(", context: ngx.timer", str(timer))
        self.assertNotIn("request:", str(timer))


if __name__ == "__main__":
    unittest.main()
