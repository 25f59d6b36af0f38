"""
Light threads, sleeps, timers and semaphores (issue 5): ngx.sleep,
ngx.thread.spawn/wait/kill, coroutine.* inside handlers that also wait,
ngx.timer.at/every/running_count/pending_count (premature on a graceful
stop), require "ngx.semaphore".

Every expectation in CASES was first run on Debian's nginx 1.22.1 +
libnginx-mod-http-lua 0.10.23 + lua-resty-core 0.1.25 (lua_shared_dict d
1m; the same Lua as content_by_lua_block, with PRELUDE's helpers defined in
the block). show(...) prints "[n] v1, v2" (how many values, then each;
strings quoted, chunk positions "content_by_lua(...):N:" as "@:"); e(f, ...)
prints what f raised without its position, or "ok".

Where moonpool differs on purpose (each case says so):
  - an error inside a coroutine.wrap body is raised to the caller, as in
    standard Lua; OpenResty aborts the entry thread instead, even under
    pcall (so no working OpenResty code depends on it).
  - semaphores are userdata, not tables (type() differs; methods do not).
  - pcall(coroutine.resume, 1) names 'resume' where OpenResty says '?'.

Also: requests are not blocked by a sleeping one; a 1024-timer pending
limit; premature = true for pending timers on QUIT; a semaphore shared by
two requests; no fd or RSS growth over 2,000 requests that spawn threads.
"""

import http.client
import os
import re
import threading
import time
import unittest

from harness import ServerTestCase

LUA_PATH = "/usr/share/lua/5.1/?.lua;;"

# Global helpers (lua.init here; pasted at the top of each block on nginx).
PRELUDE = r'''
function norm(v)
  if type(v) ~= "string" then return tostring(v) end
  return string.format("%q", (v:gsub("[%w_]+%b():%d+: ", "@: ")))
end
function show(...)
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = norm((select(i, ...))) end
  return "[" .. select("#", ...) .. "] " .. table.concat(t, ", ")
end
function e(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return "ok" end
  return (tostring(err):gsub("^[^\n]-:%d+: ", ""))
end
'''

# init_worker: a semaphore two requests share.
INIT_WORKER = r'''
SHARED_SEM = require("ngx.semaphore").new(0)
'''

CASES = {
    # ---- ngx.sleep
    "sleep_args": dict(
        # OpenResty: sleep returns nothing; the duration is cast to whole
        # milliseconds before the sign check (-0.0001 is a 0 sleep, -1 is
        # reported as "-1000", NaN as "0"); strings convert.
        content=r'''
ngx.say(show(ngx.sleep(0)))
ngx.say(show(ngx.sleep(0.001)))
ngx.say(e(ngx.sleep, -1)) ngx.say(e(ngx.sleep, -0.5))
ngx.say(e(ngx.sleep, -0.0001)) ngx.say(e(ngx.sleep, 0 / 0))
ngx.say(e(ngx.sleep)) ngx.say(e(ngx.sleep, 1, 2))
ngx.say(e(ngx.sleep, "abc")) ngx.say(e(ngx.sleep, "0.001"))
ngx.say(e(ngx.sleep, nil)) ngx.say(e(ngx.sleep, {}))
''',
        body='[0] \n[0] \n'
             'invalid sleep duration "-1000"\n'
             'invalid sleep duration "-500"\n'
             'ok\n'
             'invalid sleep duration "0"\n'
             'attempt to pass 0 arguments, but accepted 1\n'
             'attempt to pass 2 arguments, but accepted 1\n'
             "bad argument #1 to '?' (number expected, got string)\n"
             'ok\n'
             "bad argument #1 to '?' (number expected, got nil)\n"
             "bad argument #1 to '?' (number expected, got table)\n"),
    "sleep_fraction": dict(
        content=r'''
ngx.update_time() local t0 = ngx.now()
ngx.sleep(0.15)
ngx.update_time() local d = ngx.now() - t0
ngx.say(d >= 0.14 and d < 0.6)
''',
        body="true\n"),
    "sleep0_yields": dict(
        # OpenResty: sleep(0) lets the other thread run
        content=r'''
local out = {}
local t = ngx.thread.spawn(function()
  for i = 1, 3 do out[#out + 1] = "t" .. i ngx.sleep(0) end
end)
for i = 1, 3 do out[#out + 1] = "m" .. i ngx.sleep(0) end
ngx.thread.wait(t)
ngx.say(table.concat(out, " "))
''',
        body="t1 m1 t2 m2 t3 m3\n"),

    # ---- ngx.thread.spawn / wait
    "spawn_runs_first": dict(
        # OpenResty: the thread runs until its first yield before spawn
        # returns; a spawned thread's status is "running" while it sleeps
        content=r'''
local t = ngx.thread.spawn(function(a, b)
  ngx.say("in thread ", a, b) ngx.sleep(0.01) ngx.say("thread after")
  return "r1", "r2"
end, "x", "y")
ngx.say("after spawn ", type(t), " ", coroutine.status(t))
ngx.say(show(ngx.thread.wait(t)))
''',
        body='in thread xy\nafter spawn thread running\nthread after\n'
             '[3] true, "r1", "r2"\n'),
    "wait_results": dict(
        # OpenResty: a thread that ended before anyone waited is a
        # "zombie"; waiting twice: nil, "already waited or killed"
        content=r'''
local t = ngx.thread.spawn(function() ngx.sleep(0.01) return "a", nil, 3 end)
ngx.say(show(ngx.thread.wait(t)))
local u = ngx.thread.spawn(function() return "now" end)
ngx.say(coroutine.status(u))
ngx.say(show(ngx.thread.wait(u)))
ngx.say(coroutine.status(u))
ngx.say(show(ngx.thread.wait(u)))
''',
        body='[4] true, "a", nil, 3\nzombie\n[2] true, "now"\ndead\n'
             '[2] nil, "already waited or killed"\n'),
    "wait_first": dict(
        # OpenResty: wait(t1, t2) returns the first to finish; the other
        # still runs and can be waited for later
        content=r'''
local t1 = ngx.thread.spawn(function() ngx.sleep(0.1) ngx.say("t1 done") return "slow" end)
local t2 = ngx.thread.spawn(function() ngx.sleep(0.01) return "fast", 2 end)
ngx.say(show(ngx.thread.wait(t1, t2)))
ngx.say(show(ngx.thread.wait(t1, t2)))
ngx.say(show(ngx.thread.wait(t1)))
''',
        body='[3] true, "fast", 2\n[2] nil, "already waited or killed"\n'
             't1 done\n[2] true, "slow"\n'),
    "wait_failed": dict(
        # OpenResty: false, then whatever the dead coroutine's stack held,
        # the message last (so `ok, err` gets error()'s own argument)
        content=r'''
local t = ngx.thread.spawn(function(a) ngx.sleep(0.01) error("boom") end, "arg")
ngx.say(show(ngx.thread.wait(t)))
local u = ngx.thread.spawn(function(a) error("now", 0) end, "arg")
ngx.say(coroutine.status(u))
ngx.say(show(ngx.thread.wait(u)))
local v = ngx.thread.spawn(function(a) local x = nil; return x.y end, "arg")
ngx.say(show(ngx.thread.wait(v)))
local w = ngx.thread.spawn(function() error({}) end)
local r = {ngx.thread.wait(w)}
ngx.say(tostring(r[1]), " ", type(r[2]))
''',
        body='[3] false, "boom", "@: boom"\nzombie\n[2] false, "now"\n'
             '[6] false, "arg", nil, nil, "attempt to index local \'x\' '
             '(a nil value)", "@: attempt to index local \'x\' (a nil '
             'value)"\nfalse table\n',
        errors=[r"lua user thread aborted: runtime error: "
                r"content_by_lua\(.*\):\d+: boom\nstack traceback:",
                r"lua user thread aborted: runtime error: now",
                r"lua user thread aborted: runtime error: .*attempt to "
                r"index local 'x'",
                r"lua user thread aborted: runtime error: unknown reason"]),
    "wait_bad_args": dict(
        content=r'''
ngx.say(e(ngx.thread.wait))
ngx.say(e(ngx.thread.wait, 1))
ngx.say(e(ngx.thread.wait, coroutine.create(function() end)))
ngx.say(e(ngx.thread.wait, coroutine.running()))
ngx.say(e(ngx.thread.spawn))
ngx.say(e(ngx.thread.spawn, print))
''',
        body="at least one coroutine should be specified\n"
             "bad argument #1 to '?' (lua thread expected)\n"
             "attempt to wait on a coroutine that is not a user thread\n"
             "attempt to wait on a coroutine that is not a user thread\n"
             "bad argument #1 to '?' (Lua function expected)\n"
             "bad argument #1 to '?' (Lua function expected)\n"),
    "wait_not_parent": dict(
        # OpenResty: only the spawning coroutine may wait or kill, even a
        # user coroutine of the same thread
        content=r'''
local t1 = ngx.thread.spawn(function() ngx.sleep(0.05) return 1 end)
local t2 = ngx.thread.spawn(function()
  ngx.say("t2: ", e(ngx.thread.wait, t1))
  ngx.say("t2k: ", show(ngx.thread.kill(t1)))
end)
ngx.say(show(ngx.thread.wait(t2)))
ngx.say(show(ngx.thread.wait(t1)))
local t3 = ngx.thread.spawn(function()
  return ngx.thread.spawn(function() ngx.sleep(0.01) return "child" end)
end)
local ok, c = ngx.thread.wait(t3)
ngx.say(e(ngx.thread.wait, c))
ngx.say(show(ngx.thread.kill(c)))
local co = coroutine.wrap(function()
  coroutine.yield(ngx.thread.spawn(function() ngx.sleep(0.01) return "x" end))
  return "co end"
end)
ngx.say(e(ngx.thread.wait, co()))
ngx.say(co())
''',
        body="t2: only the parent coroutine can wait on the thread\n"
             't2k: [2] nil, "killer not parent"\n[1] true\n[2] true, 1\n'
             "only the parent coroutine can wait on the thread\n"
             '[2] nil, "killer not parent"\n'
             "only the parent coroutine can wait on the thread\nco end\n"),
    "kill": dict(
        content=r'''
local t = ngx.thread.spawn(function() ngx.sleep(0.05) ngx.say("never") end)
ngx.say(show(ngx.thread.kill(t)))
ngx.say(show(ngx.thread.kill(t)))
ngx.say(show(ngx.thread.wait(t)))
ngx.say(coroutine.status(t), " ", show(coroutine.resume(t)))
local u = ngx.thread.spawn(function() return 1 end)
ngx.say(show(ngx.thread.kill(u)))
ngx.say(show(ngx.thread.wait(u)))
ngx.say(e(ngx.thread.kill))
ngx.say(e(ngx.thread.kill, 1))
ngx.say(show(ngx.thread.kill(coroutine.create(function() end))))
ngx.say(show(ngx.thread.kill(coroutine.running())))
ngx.sleep(0.1)
''',
        body='[1] 1\n[2] nil, "already waited or killed"\n'
             '[2] nil, "already waited or killed"\n'
             'dead [2] false, "cannot resume dead coroutine"\n'
             '[2] nil, "already terminated"\n'
             '[2] nil, "already waited or killed"\n'
             "bad argument #1 to '?' (lua thread expected)\n"
             "bad argument #1 to '?' (lua thread expected)\n"
             '[2] nil, "not user thread"\n[2] nil, "not user thread"\n'),
    "resume_a_thread": dict(
        # OpenResty: Lua code cannot resume a coroutine the scheduler owns
        # (a light thread, the entry thread); before the fix it ran the
        # sleeping thread inside coroutine.resume
        content=r'''
local me = coroutine.running()
local k = ngx.thread.spawn(function()
  ngx.say("in k: ", coroutine.status(me), " ", show(coroutine.resume(me)))
  ngx.sleep(0.02)
  ngx.say("k woke")
end)
ngx.say(show(coroutine.resume(k)))
ngx.say(coroutine.status(k))
ngx.thread.wait(k)
''',
        body='in k: running [2] false, "cannot resume running coroutine"\n'
             '[2] false, "cannot resume running coroutine"\nrunning\n'
             'k woke\n'),
    "ends_after_threads": dict(
        # OpenResty: the request ends when its threads are done
        content=r'''
ngx.thread.spawn(function()
  ngx.sleep(0.2) ngx.say("late") ngx.log(ngx.WARN, "late thread ran")
end)
ngx.say("entry done")
''',
        body="entry done\nlate\n", logged=[r"\[warn\].*late thread ran"]),
    "exit_in_thread": dict(
        # OpenResty: ngx.exit in a user thread ends the request and its
        # other threads at once
        content=r'''
ngx.thread.spawn(function() ngx.sleep(0.05) ngx.say("thread exits") ngx.exit(200) end)
ngx.thread.spawn(function() ngx.sleep(0.5) ngx.log(ngx.ERR, "not killed") end)
ngx.sleep(1)
ngx.say("entry woke")
''',
        body="thread exits\n", max_time=0.5),
    "exit_403_in_thread": dict(
        content=r'''
ngx.thread.spawn(function() ngx.sleep(0.01) ngx.exit(403) end)
ngx.sleep(1)
ngx.say("entry woke")
''',
        status=403, max_time=0.5),
    "exit_in_thread_at_once": dict(
        content=r'''
ngx.thread.spawn(function() ngx.say("a") ngx.exit(200) end)
ngx.say("after spawn")
''',
        body="a\n"),
    "entry_error_kills_threads": dict(
        content=r'''
ngx.thread.spawn(function() ngx.sleep(0.05) ngx.log(ngx.ERR, "survived") end)
error("entry fails")
''',
        status=500,
        errors=[r"lua entry thread aborted: runtime error: .*entry fails"]),

    # ---- user coroutines in handlers that wait
    "co_sleep_inside": dict(
        # a sleep inside a user coroutine comes back to it; its yields
        # still go to its resumer
        content=r'''
local co = coroutine.create(function(a)
  ngx.say("co got ", a, " ", coroutine.status(coroutine.running()))
  ngx.sleep(0.01)
  ngx.say("co after sleep")
  local b = coroutine.yield("y1")
  ngx.say("co got ", b)
  ngx.sleep(0.01)
  return "ret"
end)
ngx.say(show(coroutine.resume(co, "A")))
ngx.say(coroutine.status(co))
ngx.say(show(coroutine.resume(co, "B")))
ngx.say(coroutine.status(co))
ngx.say(show(coroutine.resume(co)))
local gen = coroutine.wrap(function()
  for i = 1, 3 do ngx.sleep(0.001) coroutine.yield(i) end
end)
ngx.say(gen(), gen(), gen())
ngx.say(show(gen()))
ngx.say(show(gen()))
ngx.say(type(coroutine.running()), " ", select("#", coroutine.running()))
''',
        # OpenResty: a dead wrap returns resume's false + message
        body='co got A running\nco after sleep\n[2] true, "y1"\nsuspended\n'
             'co got B\n[2] true, "ret"\ndead\n'
             '[2] false, "cannot resume dead coroutine"\n123\n[0] \n'
             '[2] false, "cannot resume dead coroutine"\nthread 1\n'),
    "co_nested": dict(
        content=r'''
local inner = coroutine.wrap(function()
  ngx.sleep(0.01) coroutine.yield("i1") ngx.sleep(0.01) return "i2"
end)
local outer = coroutine.create(function()
  local a = inner()
  coroutine.yield("o:" .. a)
  return "o:" .. inner()
end)
ngx.say(show(coroutine.resume(outer)))
ngx.say(show(coroutine.resume(outer)))
ngx.say(coroutine.status(outer))
''',
        body='[2] true, "o:i1"\n[2] true, "o:i2"\ndead\n'),
    "co_in_threads": dict(
        content=r'''
local t = ngx.thread.spawn(function()
  local g = coroutine.wrap(function()
    ngx.sleep(0.01) coroutine.yield("g1") ngx.sleep(0.01) coroutine.yield("g2")
  end)
  return g() .. g()
end)
local t2 = ngx.thread.spawn(function()
  local g = coroutine.wrap(function()
    coroutine.yield("h1") ngx.sleep(0.005) coroutine.yield("h2")
  end)
  return g() .. g()
end)
ngx.say(show(ngx.thread.wait(t)))
ngx.say(show(ngx.thread.wait(t2)))
''',
        body='[2] true, "g1g2"\n[2] true, "h1h2"\n'),
    "co_status_while_waiting": dict(
        # OpenResty: a coroutine suspended in an operation is "running"
        content=r'''
local co = coroutine.create(function() ngx.sleep(0.05) return 1 end)
local t = ngx.thread.spawn(function()
  ngx.sleep(0.01)
  ngx.say("thread sees ", coroutine.status(co), " ", show(coroutine.resume(co)))
end)
coroutine.resume(co)
ngx.say(coroutine.status(co))
ngx.thread.wait(t)
''',
        body='thread sees running [2] false, "cannot resume running '
             'coroutine"\ndead\n'),
    "co_errors": dict(
        content=r'''
local co = coroutine.create(function() ngx.sleep(0.01) error("inside") end)
ngx.say(show(coroutine.resume(co)))
ngx.say(coroutine.status(co))
ngx.say(show(pcall(function() ngx.sleep(0.01) error("p") end)))
ngx.say(show(pcall(function() ngx.sleep(0.01) return 1, 2 end)))
local co2 = coroutine.create(function()
  ngx.say(show(pcall(function() ngx.sleep(0.01) error("p2") end)))
  return "fine"
end)
ngx.say(show(coroutine.resume(co2)))
ngx.say(show(xpcall(function() ngx.sleep(0.001) error("q") end,
                    function(m) return "h:" .. m end)))
ngx.say(show(coroutine.resume(coroutine.running())))
ngx.say(e(coroutine.wrap, 1))
ngx.say(e(coroutine.create, 1))
ngx.say(e(coroutine.status, 1))
local w2
w2 = coroutine.wrap(function() return w2() end)
ngx.say(show(w2()))
''',
        # ('wrap' etc.: OpenResty names the function '?' under pcall)
        body='[2] false, "@: inside"\ndead\n[2] false, "@: p"\n'
             '[3] true, 1, 2\n[2] false, "@: p2"\n[2] true, "fine"\n'
             '[2] false, "h:@: q"\n'
             '[2] false, "cannot resume running coroutine"\n'
             "bad argument #1 to 'wrap' (Lua function expected)\n"
             "bad argument #1 to 'create' (Lua function expected)\n"
             "bad argument #1 to 'status' (coroutine expected)\n"
             '[2] false, "cannot resume running coroutine"\n',
        openresty_differs="bad-argument names under pcall"),
    "co_wrap_error": dict(
        # moonpool raises to the caller (standard Lua); OpenResty aborts
        # the entry thread with a 500, pcall or not
        content=r'''
local w = coroutine.wrap(function() ngx.sleep(0.01) error("wrapped") end)
ngx.say(show(pcall(w)))
local w1 = coroutine.wrap(function() error("x") end)
ngx.say(show(pcall(w1)))
ngx.say("reached")
''',
        body='[2] false, "@: wrapped"\n[2] false, "@: x"\nreached\n',
        openresty_differs="500: lua entry thread aborted"),
    "co_yield_top": dict(
        # OpenResty: coroutine.yield() at the top of the entry or a user
        # thread is a sleep(0) returning nothing
        content=r'''
ngx.say("before")
ngx.say(show(coroutine.yield("x", "y")))
local t = ngx.thread.spawn(function()
  ngx.say("t1") ngx.say("t got ", show(coroutine.yield("z"))) return "tr"
end)
ngx.say("main ", coroutine.status(t))
ngx.say(show(ngx.thread.wait(t)))
''',
        body='before\n[0] \nt1\nmain running\nt got [0] \n'
             '[2] true, "tr"\n'),

    # ---- ngx.timer
    "timer_args": dict(
        content=r'''
local f = function() end
ngx.say(e(ngx.timer.at)) ngx.say(e(ngx.timer.at, 1))
ngx.say(e(ngx.timer.at, "x", f)) ngx.say(e(ngx.timer.at, 0, "f"))
ngx.say(e(ngx.timer.at, 0, print))
ngx.say(e(ngx.timer.at, 0, setmetatable({}, {__call = f})))
ngx.say(e(ngx.timer.every, 0, f)) ngx.say(e(ngx.timer.every, 0.0001, f))
ngx.say(show(ngx.timer.at("0.01", f)))
''',
        body="expecting at least 2 arguments but got 0\n"
             "expecting at least 2 arguments but got 1\n"
             "bad argument #1 to '?' (number expected, got string)\n"
             "bad argument #2 to '?' (Lua function expected)\n"
             "bad argument #2 to '?' (Lua function expected)\n"
             "bad argument #2 to '?' (Lua function expected)\n"
             "delay cannot be zero\ndelay cannot be zero\n[1] 1\n"),
    "timer_negative": dict(
        # OpenResty: accepted; the timer expires at once
        content=r'''
ngx.update_time() local t0 = ngx.now() local d = ngx.shared.d
ngx.timer.at(-1, function(p)
  ngx.update_time() d:set("neg", tostring(p) .. " " .. tostring(ngx.now() - t0 < 0.5))
end)
ngx.sleep(0.05) ngx.say(d:get("neg"))
''',
        body="false true\n"),
    "timer_counts": dict(
        content=r'''
local d = ngx.shared.d
ngx.sleep(0.03) -- timers of earlier cases fire first
local p0 = ngx.timer.pending_count()
ngx.timer.at(0, function()
  d:set("r1", ngx.timer.running_count() .. "/" .. ngx.timer.pending_count() - p0)
  ngx.sleep(0.05)
end)
ngx.timer.at(0.5, function() end)
ngx.say("pending ", ngx.timer.pending_count() - p0, " running ", ngx.timer.running_count())
ngx.sleep(0.02)
ngx.say("during ", d:get("r1"), " now ", ngx.timer.running_count(), "/", ngx.timer.pending_count() - p0)
ngx.sleep(0.06)
ngx.say("after ", ngx.timer.running_count(), "/", ngx.timer.pending_count() - p0)
''',
        body="pending 2 running 0\nduring 1/1 now 1/1\nafter 0/1\n"),
    "timer_every": dict(
        content=r'''
local d = ngx.shared.d
d:set("ev", 0)
ngx.say(show(ngx.timer.every(0.02, function(p, a)
  if d:incr("ev", 1) == 1 then d:set("evarg", a .. tostring(p)) end
end, "A")))
ngx.sleep(0.11)
local n = d:get("ev")
ngx.say(n >= 3 and n <= 6, " ", d:get("evarg"))
''',
        body="[1] 1\ntrue Afalse\n"),
    "timer_sleeps": dict(
        content=r'''
local d = ngx.shared.d
ngx.timer.at(0, function() ngx.sleep(0.03) d:set("ts", "slept") end)
ngx.sleep(0.06)
ngx.say(d:get("ts"))
''',
        body="slept\n"),
    "timer_threads": dict(
        # OpenResty: light threads work in timers too
        content=r'''
local d = ngx.shared.d
ngx.timer.at(0, function()
  local t = ngx.thread.spawn(function() ngx.sleep(0.01) return "tt" end)
  local u = ngx.thread.spawn(function() ngx.sleep(0.01) d:set("tu", "late") end)
  d:set("tsp", show(ngx.thread.wait(t)))
end)
ngx.sleep(0.05)
ngx.say(d:get("tsp"), " ", d:get("tu"), " ", ngx.timer.running_count())
''',
        body='[2] true, "tt" late 0\n'),
    "timer_error": dict(
        content=r'''
ngx.timer.at(0, function(p) ngx.log(ngx.WARN, "premature: ", p) error("timer boom") end)
ngx.say("ok")
''',
        body="ok\n", logged=[r"\[warn\].*premature: false"],
        errors=[r"lua entry thread aborted: runtime error: .*timer boom"
                r"(.|\n)*context: ngx.timer"]),

    # ---- ngx.semaphore
    "sema_basic": dict(
        content=r'''
local sem = require "ngx.semaphore"
local s = sem.new(2)
ngx.say(s:count(), " ", show(s:wait(0)), " ", s:count())
ngx.say(show(s:wait(0)), show(s:wait(0)), s:count())
ngx.say(show(s:post()), " ", s:count(), " ", show(s:post(3)), " ", s:count())
ngx.say(e(sem.new, -1), " | ", e(s.post, s, 0), " | ", e(s.post, s, -1), " | ",
        e(s.wait, s, -1), " | ", e(s.wait, s))
ngx.say(e(s.wait, s, "x"), " | ", e(s.post, s, "x"), " | ", e(s.count), " | ",
        e(s.wait), " | ", e(sem.new, "x"))
ngx.say(sem.new():count(), " ", sem.new(1.5):count())
ngx.update_time() local t0 = ngx.now()
local s2 = sem.new(0)
ngx.say(show(s2:wait(0.05)))
ngx.update_time() local dt = ngx.now() - t0
ngx.say(dt >= 0.04 and dt < 0.4)
ngx.say(show(s2:wait(0.0001)))
''',
        # OpenResty: a wait that times out says false, "timeout"; one that
        # cannot wait (0, or under 1 ms) says nil, "timeout"
        body='2 [1] true 1\n[1] true[2] nil, "timeout"0\n'
             '[1] true 1 [1] true 4\n'
             'no negative number | positive number required | positive '
             'number required | no negative number | attempt to perform '
             'arithmetic on a nil value\n'
             'attempt to perform arithmetic on a nil value | ok | not a '
             'semaphore instance | not a semaphore instance | ok\n'
             '0 1\n[2] false, "timeout"\ntrue\n[2] nil, "timeout"\n'),
    "sema_waiters": dict(
        # count() is negative while threads wait; a killed waiter leaves
        content=r'''
local s = require("ngx.semaphore").new(0)
local out, ths = {}, {}
for i = 1, 3 do
  ths[i] = ngx.thread.spawn(function()
    local ok, err = s:wait(1) out[#out + 1] = i .. ":" .. tostring(ok) .. tostring(err)
  end)
end
ngx.say("count ", s:count())
s:post(2)
ngx.say("after post count ", s:count(), " out ", #out)
s:post(2)
ngx.say("count ", s:count())
for i = 1, 3 do ngx.thread.wait(ths[i]) end
ngx.say(table.concat(out, " "), " count ", s:count())
local s3 = require("ngx.semaphore").new(0)
local k = ngx.thread.spawn(function() s3:wait(5) end)
ngx.say("k count ", s3:count())
ngx.thread.kill(k)
ngx.say("killed count ", s3:count())
''',
        body="count -3\nafter post count -1 out 0\ncount 1\n"
             "1:truenil 2:truenil 3:truenil count 1\nk count -1\n"
             "killed count 0\n"),
    "sema_entry": dict(
        content=r'''
local sem = require "ngx.semaphore"
local s = sem.new(0)
ngx.thread.spawn(function() ngx.sleep(0.01) s:post() end)
ngx.say(show(s:wait(1)))
ngx.say(show(s:wait(0.01)))
local co = coroutine.wrap(function() return s:wait(0.01) end)
ngx.say(show(co()))
ngx.say(show(sem.new(1):wait(0)))
local d = ngx.shared.d
ngx.timer.at(0, function() d:set("semt", show(s:wait(1))) end)
ngx.sleep(0.01)
ngx.say(s:count())
s:post()
ngx.sleep(0.01)
ngx.say(d:get("semt"))
''',
        body='[2] true, nil\n[2] false, "timeout"\n[2] false, "timeout"\n'
             '[1] true\n-1\n[2] true, nil\n'),
}

# Locations driven by the methods below, not by CASES.
EXTRA = {
    "sleep1": 'ngx.sleep(1) ngx.say("slept")',
    "fast": 'ngx.say("fast")',
    "timer_set": r'''
ngx.timer.at(0.05, function(p, a, b, c)
  ngx.shared.d:set("at", tostring(p) .. "," .. a .. "," .. tostring(b) .. "," .. c)
end, "x", nil, 3)
ngx.say(ngx.timer.pending_count())
''',
    "timer_get": 'ngx.say(ngx.shared.d:get("at"))',
    "sem_wait": r'''
ngx.update_time() local t0 = ngx.now()
local ok, err = SHARED_SEM:wait(3)
ngx.update_time()
ngx.say(tostring(ok), " ", tostring(err), " ", ngx.now() - t0 < 2)
''',
    "sem_post": 'ngx.say(SHARED_SEM:count(), " ", SHARED_SEM:post())',
    "churn": r'''
local t = ngx.thread.spawn(function() ngx.sleep(0) return 1 end)
local u = ngx.thread.spawn(function() ngx.sleep(0) end)
local co = coroutine.wrap(function() ngx.sleep(0) coroutine.yield(2) end)
co()
ngx.thread.wait(t)
ngx.say("ok")
''',
}


def _config():
    locs = [{"match": "= /t/" + n, "content": c["content"]}
            for n, c in CASES.items()]
    locs += [{"match": "= /x/" + n, "content": lua}
             for n, lua in EXTRA.items()]
    return {"lua": {"package_path": LUA_PATH, "init": PRELUDE,
                    "init_worker": INIT_WORKER},
            "shared_dicts": {"d": "1m"},
            "servers": [{"locations": locs}]}


def _proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


class ThreadsTest(ServerTestCase):
    CONFIG = _config()

    def run_case(self, name):
        case = CASES[name]
        for pat in case.get("errors", ()):
            self.expect_log(pat)
        t0 = time.monotonic()
        self.check(self.shared, {"path": "/t/" + name},
                   status=case.get("status", 200), body=case.get("body"),
                   log=case.get("logged", ()))
        if "max_time" in case:
            self.assertLess(time.monotonic() - t0, case["max_time"])

    def get(self, path, timeout=5):
        return self.shared.request("GET", path, timeout=timeout)

    def test_sleep_does_not_block_others(self):
        res = {}

        def sleeper():
            t0 = time.monotonic()
            res["body"] = self.get("/x/sleep1").body
            res["time"] = time.monotonic() - t0

        th = threading.Thread(target=sleeper)
        th.start()
        try:
            time.sleep(0.1)
            t0 = time.monotonic()
            self.assertEqual(self.get("/x/fast").body, b"fast\n")
            self.assertLess(time.monotonic() - t0, 0.5)
        finally:
            th.join(5)
        self.assertEqual(res["body"], b"slept\n")
        self.assertGreaterEqual(res["time"], 0.95)

    def test_timer_result_seen_later(self):
        # the timer writes to the dict after the request that set it
        self.assertEqual(self.get("/x/timer_set").status, 200)
        deadline = time.monotonic() + 3
        while True:
            body = self.get("/x/timer_get").body
            if body != b"nil\n" or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(body, b"false,x,nil,3\n")

    def test_semaphore_across_requests(self):
        res = {}

        def waiter():
            res["body"] = self.get("/x/sem_wait").body

        th = threading.Thread(target=waiter)
        th.start()
        try:
            # post once the waiter is queued (count -1)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.02)
                body = self.get("/x/sem_post").body
                if body.startswith(b"-1 "):
                    break
        finally:
            th.join(5)
        self.assertEqual(body, b"-1 true\n")
        self.assertEqual(res.get("body"), b"true nil true\n")

    def test_no_growth_over_2000_requests(self):
        pid = self.shared.wait_workers(1)[0]
        conn = self.shared.connection()
        try:
            def burst(n):
                for _ in range(n):
                    conn.request("GET", "/x/churn")
                    r = conn.getresponse()
                    self.assertEqual(r.read(), b"ok\n")
            burst(500)  # warm up pools and the JIT
            rss0, fds0 = _proc_status(pid)
            burst(2000)
            rss1, fds1 = _proc_status(pid)
        finally:
            conn.close()
        self.assertLessEqual(fds1, fds0, "fds %d -> %d" % (fds0, fds1))
        self.assertLess(rss1 - rss0, 2048, "VmRSS %d kB -> %d kB"
                        % (rss0, rss1))


for _name in CASES:
    def _make(name):
        def test(self):
            self.run_case(name)
        test.__name__ = "test_" + name
        return test
    setattr(ThreadsTest, "test_" + _name, _make(_name))


class TimerLifecycleTest(ServerTestCase):
    def test_pending_limit_and_premature_on_quit(self):
        # OpenResty: lua_max_pending_timers is 1024 by default; on QUIT
        # every pending timer runs at once with premature = true
        srv = self.server({
            "lua": {"init_worker": r'''
ngx.timer.at(1000, function(p) ngx.log(ngx.WARN, "at premature: ", p) end)
ngx.timer.every(1000, function(p, a)
  ngx.log(ngx.WARN, "every premature: ", p, " ", a)
end, "A")
'''},
            "servers": [{"locations": [{"match": "= /fill", "content": r'''
local n, err = 0
for i = 1, 2000 do
  local ok, e2 = ngx.timer.at(1000, function() end)
  if not ok then err = e2 break end
  n = n + 1
end
ngx.say(n + 2, " ", err, " ", ngx.timer.pending_count())
local ok, e3 = ngx.timer.every(1000, function() end)
ngx.say(tostring(ok), " ", e3)
'''}]}]})
        self.check(srv, {"path": "/fill"},
                   body="1024 too many pending timers 1024\n"
                        "nil too many pending timers\n")
        mark = srv.log_mark()
        self.assertEqual(srv.stop(), [])
        text = "\n".join(str(x) for x in srv.log_entries(mark))
        self.assertRegex(text, r"\[warn\].*at premature: true")
        self.assertRegex(text, r"\[warn\].*every premature: true A")

    def test_running_timer_delays_exit(self):
        # a timer sleeping when QUIT arrives finishes its sleep first
        srv = self.server({
            "lua": {"init_worker": r'''
ngx.timer.at(0, function(p)
  ngx.sleep(0.3)
  ngx.log(ngx.WARN, "sleeping timer done, premature ", p)
end)
'''},
            "servers": [{"locations": [{"match": "/",
                                        "content": 'ngx.say("x")'}]}]})
        self.check(srv, {"path": "/"}, body="x\n")
        mark = srv.log_mark()
        self.assertEqual(srv.stop(), [])
        text = "\n".join(str(x) for x in srv.log_entries(mark))
        self.assertRegex(text, r"sleeping timer done, premature false")


if __name__ == "__main__":
    unittest.main()
