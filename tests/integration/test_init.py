"""
test_init.py: lua.init_worker may wait (moonpool extension; OpenResty
forbids yielding there): it runs in its own thread, so ngx.sleep and
cosockets work, and the worker serves requests meanwhile.
"""

import socket
import threading
import time
import unittest

from harness import Server, ServerTestCase

CONFIG = {
    "cluster": {"workers": 1},
    "shared_dicts": {"state": "1m"},
    "lua": {
        "init_worker": (
            'ngx.shared.state:set("phase", "sleeping")\n'
            'ngx.sleep(0.5)\n'
            'ngx.shared.state:set("phase", "ready")\n'
            'local ok = ngx.timer.at(0, function(premature)\n'
            '  ngx.shared.state:set("timer", "ran")\n'
            'end)\n'),
    },
    "servers": [{
        "listen": ["127.0.0.1:{port}"],
        "locations": [
            {"match": "= /timer_say", "content":
                'ngx.timer.at(0, function()\n'
                '  local ok, err = pcall(ngx.say, "x")\n'
                '  ngx.shared.state:set("say", err)\n'
                'end)\n'
                'ngx.say("scheduled")'},
            {"match": "= /timer_say_result", "content":
                'ngx.say(ngx.shared.state:get("say"))'},
            {"match": "= /phase", "content":
                'ngx.say(ngx.shared.state:get("phase"), " ",'
                ' tostring(ngx.shared.state:get("timer")))'},
        ],
    }],
}


class InitWorkerMayWait(ServerTestCase):
    CONFIG = CONFIG

    def test_serves_while_init_worker_sleeps_then_finishes(self):
        # the server is up at once: a request during the sleep is answered
        first = self.shared.request("GET", "/phase")
        self.assertEqual(first.status, 200)
        deadline = time.time() + 5
        body = first.body
        while time.time() < deadline and body != b"ready ran\n":
            time.sleep(0.05)
            body = self.shared.request("GET", "/phase").body
        self.assertEqual(body, b"ready ran\n")
        self.assertIn(first.body, (b"sleeping nil\n", b"ready nil\n",
                                   b"ready ran\n"))


class RequestApisInTimers(ServerTestCase):
    CONFIG = CONFIG

    def test_request_api_in_timer_says_ngx_timer(self):
        # OpenResty: "API disabled in the context of ngx.timer"
        self.assertEqual(self.shared.request("GET", "/timer_say").status, 200)
        deadline = time.time() + 3
        body = b""
        while time.time() < deadline:
            body = self.shared.request("GET", "/timer_say_result").body
            if body != b"nil\n":
                break
            time.sleep(0.05)
        self.assertIn(b"API disabled in the context of ngx.timer", body)


class InitMayUseCosockets(unittest.TestCase):
    """lua.init (in the master, before fork) may sleep and use cosockets:
    configuration fetched from a service at start reaches every worker."""

    def setUp(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.served = []

        def serve():
            try:
                c, _ = self.listener.accept()
                with c:
                    self.served.append(c.recv(100))
                    c.sendall(b"value-from-service\n")
            except OSError:
                pass
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def tearDown(self):
        self.listener.close()
        self.thread.join(5)

    def test_init_fetches_over_a_cosocket(self):
        init = ('local s = ngx.socket.tcp()\n'
                'assert(s:connect("127.0.0.1", %d))\n'
                'assert(s:send("GET config\\n"))\n'
                'FETCHED = assert(s:receive())\n'
                's:close()\n'
                'ngx.sleep(0.05)\n'
                'TIMER_ERR = select(2, pcall(ngx.timer.at, 0, function() end))\n'
                % self.port)
        config = {
            "cluster": {"workers": 2},
            "lua": {"init": init},
            "servers": [{"listen": ["127.0.0.1:{port}"], "locations": [
                {"match": "= /", "content":
                    'ngx.say(FETCHED, " | ", tostring(TIMER_ERR))'}]}],
        }
        with Server(config) as srv:
            body = srv.request("GET", "/").body
        self.assertEqual(self.served, [b"GET config\n"])
        # timers stay disabled in init: the loop does not outlive it
        self.assertEqual(body, b"value-from-service | API disabled in the "
                               b"context of init_by_lua*\n")


if __name__ == "__main__":
    unittest.main()
