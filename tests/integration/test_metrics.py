"""
test_metrics.py: require "moonpool.metrics" render() -- Prometheus text for
the whole server, from per-worker counters in shared memory.
"""

import re
import time
import unittest

from harness import ServerTestCase

METRICS = "ngx.print(require('moonpool.metrics').render())"

CONFIG = {
    "cluster": {"workers": 2},
    "shared_dicts": {"cache": "1m"},
    "servers": [{
        "listen": ["127.0.0.1:{port}"],
        "locations": [
            {"match": "= /metrics", "content": METRICS},
            {"match": "= /ok", "content": 'ngx.say("ok")'},
            {"match": "= /missing", "content": "ngx.exit(404)"},
            {"match": "= /boom", "content": 'error("boom")'},
            {"match": "= /fill", "content":
                'for i = 1, 10 do ngx.shared.cache:set("k" .. i, i) end '
                'ngx.say("filled")'},
        ],
    }],
}


def parse(text):
    """{(name, frozenset(labels)): value} of an exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        if m is None:
            raise AssertionError("bad exposition line: %r" % line)
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(metrics, name, **want):
    return sum(v for (n, labels), v in metrics.items()
               if n == name and all((k, w) in labels for k, w in want.items()))


class Metrics(ServerTestCase):
    CONFIG = CONFIG
    ALLOW_ERRORS = (r"boom",)

    def scrape(self):
        resp = self.shared.request("GET", "/metrics")
        self.assertEqual(resp.status, 200)
        return parse(resp.body.decode())

    def test_counts_requests_by_status_location_and_latency(self):
        before = self.scrape()
        for _ in range(7):
            self.assertEqual(self.shared.request("GET", "/ok").status, 200)
        for _ in range(3):
            self.assertEqual(self.shared.request("GET", "/missing").status, 404)
        self.assertEqual(self.shared.request("GET", "/boom").status, 500)
        self.assertEqual(self.shared.request("GET", "/nowhere").status, 404)
        after = self.scrape()

        def delta(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        # the scrape that produced `before` is counted once it finished
        self.assertEqual(delta("moonpool_requests_total", status="2xx"), 7 + 1)
        self.assertEqual(delta("moonpool_requests_total", status="4xx"), 4)
        self.assertEqual(delta("moonpool_requests_total", status="5xx"), 1)
        self.assertEqual(delta("moonpool_location_requests_total",
                               location="/ok", status="2xx"), 7)
        self.assertEqual(delta("moonpool_location_requests_total",
                               location="/missing", status="4xx"), 3)
        self.assertEqual(delta("moonpool_location_requests_total",
                               location="/boom", status="5xx"), 1)
        # every request lands in exactly one latency bucket
        self.assertEqual(delta("moonpool_request_duration_seconds_count"),
                         7 + 3 + 1 + 1 + 1)
        inf = total(after, "moonpool_request_duration_seconds_bucket", le="+Inf")
        self.assertEqual(inf, total(after, "moonpool_request_duration_seconds_count"))
        self.assertGreater(delta("moonpool_sent_bytes_total"), 0)
        self.assertGreater(delta("moonpool_received_bytes_total"), 0)

    def test_every_worker_has_its_slot(self):
        m = self.scrape()
        pids = {dict(labels)["pid"] for (n, labels) in m
                if n == "moonpool_worker_start_time_seconds"}
        self.assertEqual(len(pids), 2)
        self.assertEqual(pids, {str(p) for p in self.shared.worker_pids()})
        # the scrape itself is in flight on one worker
        self.assertGreaterEqual(total(m, "moonpool_connections",
                                      state="active"), 1)

    def test_gauges_refresh(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            m = self.scrape()
            if all(total(m, "moonpool_lua_memory_bytes", worker=w) > 0
                   for w in ("0", "1")):
                break
            time.sleep(0.2)
        for w in ("0", "1"):
            self.assertGreater(total(m, "moonpool_lua_memory_bytes",
                                     worker=w), 0)

    def test_shared_dicts(self):
        self.assertEqual(self.shared.request("GET", "/fill").status, 200)
        m = self.scrape()
        self.assertEqual(total(m, "moonpool_shdict_capacity_bytes",
                               dict="cache"), 1024 * 1024)
        self.assertGreaterEqual(total(m, "moonpool_shdict_items",
                                      dict="cache"), 10)
        self.assertLess(total(m, "moonpool_shdict_free_bytes", dict="cache"),
                        1024 * 1024)
        self.assertEqual(total(m, "moonpool_reloads_total"), 0)


if __name__ == "__main__":
    unittest.main()
