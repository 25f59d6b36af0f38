"""
test_shutdown.py: a graceful stop is bounded by cluster.shutdown_timeout
even when a handler waits forever on a cosocket (issue 6), and pending
timers fire with premature = true on the way out.
"""

import signal
import socket
import threading
import time
import unittest

from harness import Server


class ShutdownBounded(unittest.TestCase):

    def setUp(self):
        # a peer that accepts and never answers
        self.peer = socket.socket()
        self.peer.bind(("127.0.0.1", 0))
        self.peer.listen(8)
        self.port = self.peer.getsockname()[1]

    def tearDown(self):
        self.peer.close()

    def test_quit_with_a_handler_in_an_endless_cosocket_wait(self):
        config = {
            "cluster": {"workers": 1, "shutdown_timeout": "1s"},
            "servers": [{"listen": ["127.0.0.1:{port}"], "locations": [
                {"match": "= /stuck", "content":
                    'local s = ngx.socket.tcp()\n'
                    's:settimeout(600000)\n'
                    'assert(s:connect("127.0.0.1", %d))\n'
                    'local data, err = s:receive()\n'
                    'ngx.say("woke ", tostring(err))' % self.port},
                {"match": "= /ok", "content": 'ngx.say("ok")'},
            ]}],
        }
        with Server(config, allow_errors=[]) as srv:
            self.assertEqual(srv.request("GET", "/ok").body, b"ok\n")
            out = {}

            def stuck():
                try:
                    out["resp"] = srv.request("GET", "/stuck")
                except Exception as e:  # the connection is cut: expected
                    out["error"] = e
            th = threading.Thread(target=stuck)
            th.start()
            time.sleep(0.3)  # the handler is now waiting on the peer
            t0 = time.monotonic()
            srv.signal(signal.SIGQUIT)
            code = srv.wait_exit(timeout=10)
            elapsed = time.monotonic() - t0
            th.join(5)
            self.assertEqual(code, 0)
            # shutdown_timeout (1s) ends the wait; not the 600 s timeout
            self.assertGreaterEqual(elapsed, 0.9)
            self.assertLess(elapsed, 6)
            self.assertNotIn("resp", out)


if __name__ == "__main__":
    unittest.main()
