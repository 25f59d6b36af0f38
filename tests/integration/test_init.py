"""
test_init.py: lua.init_worker may wait (moonpool extension; OpenResty
forbids yielding there): it runs in its own thread, so ngx.sleep and
cosockets work, and the worker serves requests meanwhile.
"""

import time
import unittest

from harness import ServerTestCase

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


if __name__ == "__main__":
    unittest.main()
