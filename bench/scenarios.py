"""The benchmark workloads, shared by the moonpool and the nginx+lua configs.

Each scenario is one location served by both servers with the SAME Lua code:

  name      short id, used on the command line (BENCH_SCENARIOS) and in tables
  path      the request path; the location is an exact match ("= path")
  content   Lua code of the content handler (identical on both sides)
  wrk_args  extra wrk arguments (a list), e.g. ["-H", "Connection: close"]
  expect    optional: (status, body length) a pre-flight GET must return
  redis     optional: True when the Lua talks to redis-server; run.sh then
            starts one for the run on a free port, given to the Lua as the
            global REDIS_PORT (defined before INIT on both sides)
  tls       optional: True to run it over HTTPS (wrk on an https:// URL);
            both servers then get a second server block on a TLS port with
            a self-signed certificate generated into the run directory

Several scenarios may share a path (same location, different client
behaviour); the location is generated once per distinct path.

Code that both servers run once before serving goes in INIT (moonpool's
lua.init, nginx's init_by_lua_block); globals it defines are visible in the
handlers on both sides.

Shared dictionaries (name -> size with k/m suffix) go in SHARED_DICTS; they
become `shared_dicts:` in moonpool and `lua_shared_dict` in nginx.

To add a scenario: append a dict to SCENARIOS (and, if needed, code to INIT or
an entry to SHARED_DICTS). Nothing else has to change.
"""

INIT = """\
-- a 4096-byte body built once, not per request
BODY_4K = string.rep("0123456789abcdef", 255) .. "0123456789abcde\\n"
-- the shared-dict scenario reads this key on every request
ngx.shared.bench:set("k", "hello")
-- the API scenario answers JSON with Debian's lua-cjson
cjson = require "cjson"

-- one redis round trip on a pooled cosocket (the redis scenarios)
function REDIS_PING()
    local s = ngx.socket.tcp()
    s:settimeout(1000)
    local ok, err = s:connect("127.0.0.1", REDIS_PORT)
    if not ok then
        return nil, err
    end
    s:send("PING\\r\\n")
    local line
    line, err = s:receive()
    if line then
        s:setkeepalive(10000, 64)
    end
    return line, err
end
"""

SHARED_DICTS = {"bench": "10m"}

SCENARIOS = [
    {
        # issue 3: a counter and a read on every request (with
        # BENCH_WORKERS=2 the workers contend for the same keys)
        "name": "shdict",
        "path": "/shdict",
        "content": 'local d = ngx.shared.bench\n'
                   'd:incr("hits", 1, 0)\n'
                   'ngx.say(d:get("k"))',
        "wrk_args": [],
        "expect": (200, 6),
    },
    {
        "name": "hello",
        "path": "/hello",
        "content": 'ngx.say("hello")',
        "wrk_args": [],
        "expect": (200, 6),
    },
    {
        "name": "4k",
        "path": "/4k",
        "content": "ngx.print(BODY_4K)",
        "wrk_args": [],
        "expect": (200, 4096),
    },
    {
        "name": "hello-close",
        "path": "/hello",
        "content": 'ngx.say("hello")',
        "wrk_args": ["-H", "Connection: close"],
        "expect": (200, 6),
    },
    {
        "name": "https-hello",
        "path": "/hello",
        "content": 'ngx.say("hello")',
        "wrk_args": [],
        "expect": (200, 6),
        "tls": True,
    },
    {
        # issue 4's "realistic API": an access check on a header, query
        # args, a regex and a small JSON answer
        "name": "api",
        "path": "/api",
        "query": "id=42-alice&q=moonpool",
        "headers": {"X-Api-Key": "secret"},
        "access": 'if ngx.var.http_x_api_key ~= "secret" then\n'
                  '    return ngx.exit(403)\n'
                  'end',
        "content": 'local args = ngx.req.get_uri_args()\n'
                   'local m = ngx.re.match(args.id or "", [[^(\\d+)-(\\w+)$]], "jo")\n'
                   'ngx.header.content_type = "application/json"\n'
                   'ngx.say(cjson.encode({id = m and tonumber(m[1]),\n'
                   '                      name = m and m[2], q = args.q}))',
        "wrk_args": [],
        "expect": (200, 40),
    },
    {
        # issue 5: per request a pooled connection to a local redis-server,
        # PING, read +PONG, setkeepalive
        "name": "redis-ping",
        "path": "/redis-ping",
        "content": 'ngx.say((assert(REDIS_PING())))',
        "wrk_args": [],
        "expect": (200, 6),
        "redis": True,
    },
    {
        # issue 5: fan-out, three light threads doing a redis round trip each
        "name": "redis-fanout",
        "path": "/redis-fanout",
        "content": (
            "local a = ngx.thread.spawn(REDIS_PING)\n"
            "local b = ngx.thread.spawn(REDIS_PING)\n"
            "local c = ngx.thread.spawn(REDIS_PING)\n"
            "local _, ra = ngx.thread.wait(a)\n"
            "local _, rb = ngx.thread.wait(b)\n"
            "local _, rc = ngx.thread.wait(c)\n"
            "ngx.say(ra, rb, rc)\n"),
        "wrk_args": [],
        "expect": (200, 16),
        "redis": True,
    },
]
