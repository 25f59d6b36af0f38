"""
ngx.shared.DICT with OpenResty's results.

Every expectation in CASES was first run on Debian's nginx 1.22.1 +
libnginx-mod-http-lua + lua-resty-core (lua_shared_dict cache 10m; small
64k) as content_by_lua_block; the output format is the one of show()
below ("[n] v1, v2": how many values were returned, then each one), so a
missing trailing nil or an extra one is caught. Raised errors are printed
as "!! message" with the "file:line: " prefix removed (it names
lua-resty-core's file on OpenResty). Two cases differ on OpenResty by
design: "table_values" (a moonpool extension; OpenResty says "bad value
type") and one line of "bad_args", where the FFI conversion error names
the C function (ngx_lua_ffi_shdict_store there, mp_ffi_shdict_store here).

Other tests: two workers share one counter; incr from concurrent requests
is exact; eviction reports forcible on a small dict and safe_set says
"no memory" instead of evicting.
"""

import os
import signal
import threading
import unittest

from harness import ServerTestCase, Server

INIT = r'''
local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" then return string.format("%.17g", v) end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[#t + 1] = tostring(k) .. "=" .. fmt(x) end
    table.sort(t)
    return "{" .. table.concat(t, ",") .. "}"
  end
  return tostring(v)
end
local function pack(...) return {n = select("#", ...), ...} end
-- show(f): "[n] v1, v2" for what f returned, "!! msg" for what it raised
function show(f)
  local r = pack(pcall(f))
  if not r[1] then
    ngx.say("!! ", (tostring(r[2]):gsub("^[^:]*:%d+: ", "")))
    return
  end
  local t = {}
  for i = 2, r.n do t[#t + 1] = fmt(r[i]) end
  ngx.say("[", r.n - 1, "] ", table.concat(t, ", "))
end
function nap(s)
  -- ngx.now() is the time the request's loop iteration began; refresh it
  -- first or a slow request (ASan) naps for nothing
  ngx.update_time()
  local t = ngx.now() + s
  repeat ngx.update_time() until ngx.now() >= t
end
'''

# name: (lua run with d = ngx.shared.cache after d:flush_all() and
# d:flush_expired(), expected output)
CASES = {
    "set_get_string": (
        'show(function() return d:set("a", "hello") end) '
        'show(function() return d:get("a") end) '
        'show(function() return d:get_stale("a") end)',
        '[3] true, nil, false\n[1] "hello"\n[3] "hello", nil, false\n'),
    "missing_key": (
        'show(function() return d:get("nope") end) '
        'show(function() return d:get_stale("nope") end)',
        "[1] nil\n[1] nil\n"),
    "flags": (
        # OpenResty: flags come back only when non-zero; an int argument
        # (-1 stays -1, 1.7 -> 1, 2^32+5 -> INT_MIN)
        'show(function() return d:set("b", 3.25, 0, 7) end) '
        'show(function() return d:get("b") end) '
        'show(function() return d:get_stale("b") end) '
        'd:set("x", 1, 0, -1) show(function() return d:get("x") end) '
        'd:set("x", 1, 0, 1.7) show(function() return d:get("x") end) '
        'd:set("x", 1, 0, 2^32 + 5) show(function() return d:get("x") end) '
        'd:set("x", 1, false, false) show(function() return d:get("x") end)',
        "[3] true, nil, false\n[2] 3.25, 7\n[3] 3.25, 7, false\n"
        "[2] 1, -1\n[2] 1, 1\n[2] 1, -2147483648\n[1] 1\n"),
    "value_types": (
        'd:set("t", true) d:set("f", false) d:set("n", 0.1) '
        'd:set("big", 2^53 + 1) d:set("inf", 1/0) d:set("bin", "a\\0b\\255") '
        'd:set("e", "") '
        'show(function() return d:get("t"), d:get("f"), d:get("n") end) '
        'show(function() return d:get("big"), d:get("inf") end) '
        'show(function() return d:get("bin"), d:get("e") end) '
        'd:set("nan", 0/0) local v = d:get("nan") ngx.say(v ~= v)',
        '[3] true, false, 0.10000000000000001\n'
        '[2] 9007199254740992, inf\n'
        '[2] "a\\0b\xff", ""\ntrue\n'),
    "big_value": (
        # (300 kB: a value must fit in one shard of the dict, 1/16 of it)
        'local v = string.rep("0123456789", 30000) '
        'show(function() return d:set("big", v) end) '
        'ngx.say(d:get("big") == v, " ", d:get_stale("big") == v)',
        "[3] true, nil, false\ntrue true\n"),
    "keys": (
        # OpenResty: non-string keys go through tostring()
        'show(function() return d:set(nil, 1) end) '
        'show(function() return d:set("", 1) end) '
        'show(function() return d:set(string.rep("x", 65536), 1) end) '
        'show(function() return d:set(string.rep("x", 65535), 1) end) '
        'show(function() return d:get(string.rep("x", 65535)) end) '
        'show(function() return d:set(12, "num"), d:get(12), d:get("12") end) '
        'show(function() return d:set(1.5, "f"), d:get("1.5") end) '
        'show(function() return d:set(true, "t"), d:get("true") end) '
        'show(function() return d:get(nil) end) '
        'show(function() return d:get("") end) '
        'show(function() return d:get(string.rep("x", 65536)) end) '
        'show(function() return d:get({}) end) '
        'd:set("a\\0b", 1) show(function() return d:get("a\\0b"), d:get("a") end)',
        '[2] nil, "nil key"\n[2] nil, "empty key"\n[2] nil, "key too long"\n'
        '[3] true, nil, false\n[1] 1\n[3] true, "num", "num"\n'
        '[2] true, "f"\n[2] true, "t"\n[2] nil, "nil key"\n'
        '[2] nil, "empty key"\n[2] nil, "key too long"\n[1] nil\n'
        '[2] 1, nil\n'),
    "bad_args": (
        'show(function() return d:set("x", print) end) '
        'show(function() return d:set("x", 1, -1) end) '
        'show(function() return d:set("x", 1, "a") end) '
        'show(function() return d:set("x", 1, 0, "a") end)',
        '[2] nil, "bad value type"\n!! bad "exptime" argument\n'
        "!! attempt to compare string with number\n"
        "!! bad argument #10 to 'mp_ffi_shdict_store' (cannot convert "
        "'string' to 'int')\n"),
    "bad_zone": (
        # OpenResty: a dot instead of a colon raises
        'show(function() return d.get("a") end) '
        'show(function() return d.get({}) end) '
        'd:set("a", "v") show(function() return d.get(d, "a") end) '
        'show(function() return d.set("a", 1) end) '
        'show(function() return d.lpush("l", 1, 2) end) '
        'show(function() return d.flush_all() end) '
        'show(function() return d.capacity() end) '
        'show(function() return d.get_keys() end) '
        'show(function() return type(d), type(d[1]), '
        'getmetatable(d) == getmetatable(ngx.shared.small), '
        'ngx.shared.nodict end)',
        '!! bad "zone" argument\n!! bad "zone" argument\n[1] "v"\n'
        '!! bad "zone" argument\n!! bad "zone" argument\n'
        '!! bad "zone" argument\n!! bad "zone" argument\n'
        "!! expecting 1 or 2 argument(s), but saw 0\n"
        '[4] "table", "userdata", true, nil\n'),
    "set_nil_deletes": (
        'd:set("x", 1) '
        'show(function() return d:set("x", nil) end) '
        'show(function() return d:get("x") end) '
        'show(function() return d:safe_set("x", nil) end)',
        "[3] true, nil, false\n[1] nil\n[3] true, nil, false\n"),
    "add_replace": (
        'd:set("a", 1) '
        'show(function() return d:add("a", 1) end) '
        'show(function() return d:safe_add("a", 1) end) '
        'show(function() return d:add("new", 1), d:get("new") end) '
        'show(function() return d:safe_add("new2", 1) end) '
        'show(function() return d:add("x2", nil) end) '
        'show(function() return d:replace("x2", nil) end) '
        'show(function() return d:replace("nope", 1) end) '
        'show(function() return d:replace("a", "r"), d:get("a") end) '
        'show(function() return d:safe_set("a", "s"), d:get("a") end)',
        '[3] false, "exists", false\n[3] false, "exists", false\n'
        "[2] true, 1\n[3] true, nil, false\n"
        '[3] false, "attempt to add or replace nil values", false\n'
        '[3] false, "attempt to add or replace nil values", false\n'
        '[3] false, "not found", false\n[2] true, "r"\n[2] true, "s"\n'),
    "delete": (
        'd:set("a", 1) '
        'show(function() return d:delete("a"), d:get("a") end) '
        'show(function() return d:delete("a") end) '
        'show(function() return d:delete(nil) end) '
        'show(function() return d:delete("") end)',
        "[2] true, nil\n[3] true, nil, false\n"
        '[2] nil, "nil key"\n[2] nil, "empty key"\n'),
    "incr": (
        # OpenResty: one value without init, three with it
        'show(function() return d:incr("cnt", 1) end) '
        'show(function() return d:incr("cnt", 1, 0) end) '
        'show(function() return d:incr("cnt", 1, 0) end) '
        'show(function() return d:incr("cnt", 2.5) end) '
        'show(function() return d:incr("cnt", "3") end) '
        'show(function() return d:incr("cnt", "x") end) '
        'show(function() return d:incr("cnt") end) '
        'show(function() return d:incr("cnt2", 1, "5") end) '
        'show(function() return d:incr("cnt3", 1, "x") end) '
        'show(function() return d:incr("cnt4", 1, nil, 10) end) '
        'show(function() return d:incr("cnt4", 1, 0, -1) end) '
        'show(function() return d:incr("cnt4", 1, 0, "x") end) '
        'show(function() return d:incr("cnt5", 1, 0, 10), d:ttl("cnt5") end) '
        'd:set("b", 3.25, 0, 7) '
        'show(function() return d:incr("b", 1), d:get("b") end) '
        'd:set("s", "str") show(function() return d:incr("s", 1) end) '
        'show(function() return d:incr(nil, 1) end) '
        'show(function() return d:incr("", 1) end)',
        '[2] nil, "not found"\n[3] 1, nil, false\n[3] 2, nil, false\n'
        "[1] 4.5\n[1] 7.5\n!! cannot convert 'nil' to 'double'\n"
        "!! cannot convert 'nil' to 'double'\n[3] 6, nil, false\n"
        "!! bad init arg: number expected, got string\n"
        '!! must provide "init" when providing "init_ttl"\n'
        '!! bad "init_ttl" argument\n'
        "!! bad init_ttl arg: number expected, got string\n"
        "[2] 1, 10\n[3] 4.25, 4.25, 7\n"
        '[2] nil, "not a number"\n[2] nil, "nil key"\n'
        '[2] nil, "empty key"\n'),
    "lists": (
        'show(function() return d:lpush("l", "a"), d:lpush("l", 2), '
        'd:rpush("l", "z") end) '
        'show(function() return d:llen("l") end) '
        'show(function() return d:get("l") end) '
        'show(function() return d:get_stale("l") end) '
        'show(function() return d:incr("l", 1) end) '
        'show(function() return d:ttl("l") end) '
        'show(function() return d:lpop("l"), d:rpop("l"), d:llen("l") end) '
        'show(function() return d:lpop("l"), d:lpop("l"), d:llen("l") end) '
        'd:set("s", "x") '
        'show(function() return d:lpush("s", "x") end) '
        'show(function() return d:lpop("s") end) '
        'show(function() return d:llen("s") end) '
        'show(function() return d:llen("nolist") end) '
        'show(function() return d:lpush("l2", true) end) '
        'show(function() return d:lpush("l2", nil) end) '
        'show(function() return d:lpush(nil, 1) end) '
        'show(function() return d:lpush("", 1) end) '
        'show(function() return d:lpush("l2") end) '
        'show(function() return d:lpush("l2", 1, 2) end) '
        'show(function() return d:lpop("l2", 1) end) '
        'show(function() return d:lpop() end) '
        'show(function() return d:lpop(nil) end) '
        'show(function() return d:llen() end) '
        'show(function() return d:lpush("l4", 1.5), d:lpush("l4", "s"), '
        'd:rpop("l4"), d:rpop("l4"), d:rpop("l4") end) '
        'local big = string.rep("x", 100000) d:rpush("l5", big) '
        'ngx.say(d:lpop("l5") == big)',
        "[3] 1, 2, 3\n[1] 3\n"
        '[2] nil, "value is a list"\n[2] nil, "value is a list"\n'
        '[2] nil, "not a number"\n[1] 0\n[3] 2, "z", 1\n[3] "a", nil, 0\n'
        '[2] nil, "value not a list"\n[2] nil, "value not a list"\n'
        '[2] nil, "value not a list"\n[1] 0\n'
        '[2] nil, "bad value type"\n[2] nil, "bad value type"\n'
        '[2] nil, "nil key"\n[2] nil, "empty key"\n'
        "!! expecting 3 arguments, but only seen 2\n"
        "!! expecting 3 arguments, but only seen 4\n"
        "!! expecting 2 arguments, but only seen 3\n"
        "!! expecting 2 arguments, but only seen 1\n"
        '[2] nil, "nil key"\n'
        "!! expecting 2 arguments, but only seen 1\n"
        '[5] 1, 2, 1.5, "s", nil\ntrue\n'),
    "ttl_expire": (
        'd:set("b", 1) '
        'show(function() return d:ttl("b") end) '
        'show(function() return d:set("tt", 1, 100), '
        'math.floor(d:ttl("tt") + 0.5) end) '
        'show(function() return d:ttl("nope") end) '
        'show(function() return d:ttl(nil) end) '
        'show(function() return d:ttl("") end) '
        'show(function() return d:expire("b", 50), '
        'math.floor(d:ttl("b") + 0.5) end) '
        'show(function() return d:expire("b", 0), d:ttl("b") end) '
        'show(function() return d:expire("nope", 1) end) '
        'show(function() return d:expire("b") end) '
        'show(function() return d:expire("b", "x") end) '
        'show(function() return d:expire(nil, 1) end)',
        "[1] 0\n[2] true, 100\n"
        '[2] nil, "not found"\n[2] nil, "nil key"\n[2] nil, "empty key"\n'
        "[2] true, 50\n[2] true, 0\n"
        '[2] nil, "not found"\n!! bad "exptime" argument\n'
        "!! attempt to perform arithmetic on local 'exptime' (a string "
        'value)\n[2] nil, "nil key"\n'),
    "expiry": (
        # OpenResty: get (not get_stale) also frees up to two expired items
        # at the LRU tail, so get_stale runs first here (the docs say
        # expired items are not guaranteed to stay readable).
        'd:set("exp", 1, 0.001) d:set("exp2", 1, 0.001) '
        'd:set("exp3", 1, 0.001) nap(0.01) '
        'show(function() return d:get_stale("exp") end) '
        'show(function() return d:ttl("exp") < 0 end) '
        'show(function() return d:get("exp") end) '
        'show(function() return d:add("exp", 2), d:get("exp") end) '
        'show(function() return d:incr("exp2", 1) end) '
        'show(function() return d:incr("exp2", 1, 10) end) '
        'show(function() return d:replace("exp3", 1) end)',
        "[3] 1, nil, true\n[1] true\n[1] nil\n[2] true, 2\n"
        '[2] nil, "not found"\n[3] 11, nil, false\n'
        '[3] false, "not found", false\n'),
    "flush": (
        # OpenResty: flush_all marks every item expired but also frees the
        # (up to) three oldest at once, so only the newest items are read
        # back with get_stale, and flush_expired counts at least n - 5 (the get
        # frees two more).
        'for i = 1, 10 do d:set("k" .. i, i, 0, i) end '
        'show(function() return d:flush_all() end) '
        'show(function() return d:get("k10") end) '
        'show(function() return d:get_stale("k10") end) '
        'show(function() return d:flush_expired() >= 5 end) '
        'show(function() return d:get_stale("k10") end) '
        'd:set("f1", 1, 0.001) d:set("f2", 1, 0.001) d:set("f3", 1, 0.001) '
        'd:set("f4", 1) nap(0.01) '
        'show(function() return d:flush_expired(1), d:flush_expired(0), '
        'd:flush_expired(-1), d:get("f4") end) '
        'show(function() return d:flush_expired("x") end) '
        'show(function() return d:flush_expired(1, 2) end) '
        'show(function() return d:flush_all(1) end)',
        '[0] \n[1] nil\n[3] 10, 10, true\n[1] true\n[1] nil\n'
        "[4] 1, 2, 0, 1\n"
        "!! bad argument #2 to '?' (number expected, got string)\n"
        "!! expecting 1 or 2 argument(s), but saw 3\n[0] \n"),
    "get_keys": (
        'show(function() return d:get_keys() end) '
        'for i = 1, 5 do d:set("k" .. i, i) end '
        'd:set("gone", 1, 0.001) nap(0.01) '
        'show(function() return #d:get_keys(), #d:get_keys(0), '
        '#d:get_keys(2), #d:get_keys(-1) end) '
        'local k = d:get_keys() table.sort(k) ngx.say(table.concat(k, " ")) '
        'show(function() return d:get_keys("x") end) '
        'show(function() return d:get_keys(1, 2) end)',
        "[1] {}\n[4] 5, 5, 2, 5\nk1 k2 k3 k4 k5\n"
        "!! bad argument #2 to '?' (number expected, got string)\n"
        "!! expecting 1 or 2 argument(s), but saw 3\n"),
    "capacity": (
        'show(function() return d:capacity(), ngx.shared.small:capacity(), '
        'type(d:free_space()) end)',
        '[3] 10485760, 65536, "number"\n'),
    "many_get_keys": (
        'for i = 1, 2000 do d:set("k" .. i, i) end '
        'ngx.say(#d:get_keys(), " ", #d:get_keys(0))',
        "1024 2000\n"),
    # moonpool extension: tables are stored with string.buffer
    "table_values": (
        'show(function() return d:set("t", {1, "two", {x = true}, '
        'y = 2.5}) end) '
        'show(function() return d:get("t") end) '
        'd:set("t2", {}, 0, 5) '
        'show(function() return d:get("t2") end) '
        'show(function() return d:get_stale("t") end) '
        'show(function() return d:set("t3", {f = print}) end) '
        'show(function() return d:add("t", {}) end) '
        'show(function() return d:incr("t", 1) end)',
        "[3] true, nil, false\n"
        '[1] {1=1,2="two",3={x=true},y=2.5}\n[2] {}, 5\n'
        '[3] {1=1,2="two",3={x=true},y=2.5}, nil, false\n'
        '[2] nil, "bad value type"\n[3] false, "exists", false\n'
        '[2] nil, "not a number"\n'),
    "small_eviction": (
        # OpenResty: a set that evicts live items says forcible = true and
        # the oldest keys are gone
        'local s = ngx.shared.small s:flush_all() s:flush_expired() '
        'local big = string.rep("v", 1000) local n = 0 '
        'for i = 1, 500 do local ok, err, f = s:set("k" .. i, big) '
        'if not ok then ngx.say("fail ", err) break end '
        'if f then n = i break end end '
        'ngx.say(n > 10, " ", s:get("k1"), " ", s:get("k" .. n) == big)',
        "true nil true\n"),
    "small_safe_set_full": (
        # OpenResty: false, "no memory", false (lua-resty-core returns
        # false, not nil, for a failed store)
        'local s = ngx.shared.small s:flush_all() s:flush_expired() '
        'local big = string.rep("v", 1000) '
        'for i = 1, 500 do local ok, err, f = s:safe_set("k" .. i, big) '
        'if not ok then show(function() return ok, err, f, i > 10, '
        's:get("k1") == big end) break end end '
        'show(function() return s:safe_add("zz", big) end) '
        'show(function() return s:safe_set("huge", '
        'string.rep("v", 100000)) end) '
        'show(function() return (s:set("huge", string.rep("v", 100000))) end)',
        '[5] false, "no memory", false, true, true\n'
        '[3] false, "no memory", false\n[3] false, "no memory", false\n'
        "[1] false\n"),
}


def _config():
    locs = []
    for name, (lua, _) in CASES.items():
        locs.append({"match": "= /t/" + name,
                     "content": "local d = ngx.shared.cache "
                                "d:flush_all() d:flush_expired() " + lua})
    locs.append({"match": "= /incr",
                 "content": 'ngx.say((ngx.shared.cache:incr("hits", 1, 0)))'})
    locs.append({"match": "= /who",
                 "content": 'local d = ngx.shared.cache '
                            'ngx.say(ngx.worker.pid(), " ", '
                            '(d:incr("shared", 1, 0)))'})
    return {"cluster": {"workers": 2},
            "shared_dicts": {"cache": "10m", "small": "64k"},
            "lua": {"init": INIT},
            "servers": [{"locations": locs}]}


class SharedDict(ServerTestCase):
    CONFIG = _config()

    def run_case(self, name):
        _, expected = CASES[name]
        # Both workers must answer the same; run each case a few times.
        for _ in range(2):
            resp = self.shared.request("GET", "/t/" + name)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.body.decode("latin-1"), expected)

    def test_two_workers_share_a_counter(self):
        pids = {}
        last = 0
        for _ in range(400):
            resp = self.shared.request("GET", "/who")
            pid, n = resp.body.decode().split()
            n = int(n)
            self.assertGreater(n, last)
            last = n
            pids[pid] = n
            if len(pids) == 2:
                break
        self.assertEqual(len(pids), 2, "only one worker answered")

    def test_concurrent_incr_is_exact(self):
        start = int(self.shared.request("GET", "/incr").body)
        errors = []

        def hammer():
            try:
                conn = self.shared.connection()
                for _ in range(200):
                    conn.request("GET", "/incr")
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        errors.append(r.status)
                conn.close()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        end = int(self.shared.request("GET", "/incr").body)
        self.assertEqual(end - start, 8 * 200 + 1)


def _make(name):
    def test(self):
        self.run_case(name)
    return test


for _name in CASES:
    setattr(SharedDict, "test_case_" + _name, _make(_name))


class WorkerDeath(ServerTestCase):
    def test_sigkilled_worker_respawned_dict_still_works(self):
        srv = self.server({
            "cluster": {"workers": 2},
            "shared_dicts": {"cache": "1m"},
            "servers": [{"locations": [{"match": "/", "content":
                'local d = ngx.shared.cache '
                'for i = 1, 200 do d:set("k" .. i % 50, i) '
                'd:incr("n", 1, 0) end '
                'ngx.say((d:get("n")))'}]}]},
            allow_errors=[r"exited on signal 9",
                          r"died holding .* recovered"])
        stop = threading.Event()
        seen = []

        def load():
            while not stop.is_set():
                try:
                    seen.append(int(srv.request("GET", "/").body))
                except Exception:
                    pass  # the killed worker's connection
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            victims = []
            for _ in range(5):
                pid = srv.wait_workers(2, exclude=victims)[0]
                os.kill(pid, signal.SIGKILL)
                victims.append(pid)
                srv.wait_workers(2, exclude=victims)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        before = int(srv.request("GET", "/").body)
        after = int(srv.request("GET", "/").body)
        self.assertGreater(len(seen), 0)
        self.assertEqual(after, before + 200)


class Zones(ServerTestCase):
    def test_dict_too_small_is_a_start_error(self):
        srv = Server({"shared_dicts": {"tiny": "16k"},
                      "servers": [{"locations": [
                          {"match": "/", "content": 'ngx.say("x")'}]}]},
                     allow_errors=[r"tiny"])
        try:
            srv.start(wait=False)
            code = srv.wait_exit()
            self.assertEqual(code, 1)
            with open(srv.prefix + "/stderr") as f:
                self.assertIn('shared dict "tiny"', srv.error_log() + f.read())
        finally:
            srv.finish()

    def test_check_config_sees_dicts(self):
        srv = self.server({
            "shared_dicts": {"a": "1m"},
            "servers": [{"locations": [{"match": "/", "content":
                'local d = ngx.shared.a ngx.say(d:set("k", 1), " ", '
                'd:get("k"), " ", d:capacity())'}]}]})
        self.assertEqual(srv.request("GET", "/").body, b"true 1 1048576\n")


if __name__ == "__main__":
    unittest.main()
