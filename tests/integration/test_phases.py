"""
Phases (issue 4): rewrite -> access -> content -> header_filter ->
body_filter -> log, ngx.ctx across them, ngx.exit/ngx.exec/ngx.redirect,
filters (ngx.arg), ngx.send_headers/headers_sent/eof, ngx.resp.get_headers.

Every case was first run on Debian's nginx 1.22.1 + libnginx-mod-http-lua
(+ lua-resty-core), each location mapped to an nginx location with the same
*_by_lua_block handlers and, for locations without a content handler, a
root on an empty directory; "OpenResty:" comments record what it answered.
moonpool buffers bodies and sends Content-Length where nginx sends chunks:
status, the headers that matter and body bytes are compared, not framing,
and never the HTML of nginx's error pages.

Cases are data: one location "= /t/<name>" per case, one test method per
case. Fields:
    rewrite, access, content, header_filter, body_filter, log   handlers
    request  kwargs for Server.request (default GET /t/<name>); "{path}"
             in request["path"] is replaced
    status, body, body_re, headers, absent_headers   the expected response
    logged   regexes entries of the error log must match (any level)
    errors   regexes for the [error]-or-worse entries the case must cause
    xfail    why moonpool is known to differ (unittest.expectedFailure)
"""

import unittest

from harness import ServerTestCase, IncompleteResponse, parse_response

LUA_PATH = "/usr/share/lua/5.1/?.lua;;"
PHASES = ("rewrite", "access", "content", "header_filter", "body_filter",
          "log")

# pcall(f, ...) and give back the error text (or "ok")
ERR_OF = """
local function err_of(f, ...)
    local ok, err = pcall(f, ...)
    if ok then return "ok" end
    return (tostring(err):gsub("^.-:%d+: ", ""))
end
"""

# One header per API a filter or the log phase may not call.
DISABLED = ERR_OF + """
local res = {
    say = err_of(ngx.say, "x"),
    print = err_of(ngx.print, "x"),
    flush = err_of(ngx.flush),
    exec = err_of(ngx.exec, "/t/target"),
    redirect = err_of(ngx.redirect, "/x"),
    send_headers = err_of(ngx.send_headers),
}
"""

DISABLED_NAMES = ("say", "print", "flush", "exec", "redirect", "send_headers")

CASES = {
    # ---- order and ngx.ctx
    "order_ctx": dict(
        # OpenResty: every phase shares one ngx.ctx; header_filter runs once
        # before the first body byte, body_filter per output and at eof,
        # log last.
        rewrite='ngx.ctx.t = {"rewrite"}',
        access='table.insert(ngx.ctx.t, "access")',
        content='table.insert(ngx.ctx.t, "content") '
                'ngx.say(table.concat(ngx.ctx.t, ","))',
        header_filter='table.insert(ngx.ctx.t, "header_filter") '
                      'ngx.header["X-Order"] = table.concat(ngx.ctx.t, ",")',
        body_filter='table.insert(ngx.ctx.t, "body_filter") '
                    'if ngx.arg[2] then ngx.arg[1] = '
                    'table.concat(ngx.ctx.t, ",") .. "\\n" end',
        log='table.insert(ngx.ctx.t, "log") '
            'ngx.log(ngx.NOTICE, "order: ", table.concat(ngx.ctx.t, ","))',
        body="rewrite,access,content\n"
             "rewrite,access,content,header_filter,body_filter,body_filter\n",
        headers={"X-Order": "rewrite,access,content,header_filter"},
        logged=[r"order: rewrite,access,content,header_filter,body_filter,"
             r"body_filter,log"]),

    # ---- ngx.exit in rewrite and access
    "exit_403_rewrite": dict(
        # OpenResty: the request ends with nginx's 403 page; content never
        # runs, but the filters and log do, with ngx.status 403.
        rewrite='ngx.ctx.r = 1 ngx.exit(403) ngx.ctx.after = 1',
        content='ngx.ctx.c = 1 ngx.say("content")',
        header_filter='ngx.header["X-Status"] = ngx.status '
                      'ngx.header["X-Content"] = tostring(ngx.ctx.c)',
        log='ngx.log(ngx.NOTICE, "exit log: ", ngx.status, " ", '
            'tostring(ngx.ctx.c), " ", tostring(ngx.ctx.after))',
        status=403, headers={"X-Status": "403", "X-Content": "nil"},
        logged=[r"exit log: 403 nil nil"]),
    "exit_404_access": dict(
        # OpenResty: same from access
        access='ngx.exit(ngx.HTTP_NOT_FOUND)',
        content='ngx.say("content")',
        header_filter='ngx.header["X-Status"] = ngx.status',
        status=404, headers={"X-Status": "404"}),
    "exit_200_rewrite_after_say": dict(
        # OpenResty: output then ngx.exit(200) ends the request there
        rewrite='ngx.say("rewrite") ngx.exit(200)',
        content='ngx.say("content")',
        body="rewrite\n"),
    "exit_200_access_nothing_sent": dict(
        # OpenResty: 200 with an empty body
        access='ngx.exit(ngx.HTTP_OK)',
        content='ngx.say("content")',
        body=""),
    "exit_201_rewrite_nothing_sent": dict(
        # OpenResty: ngx.exit(201) with nothing sent answers 201? see run
        rewrite='ngx.exit(201)',
        content='ngx.say("content")',
        status=201, body=""),
    "exit_ok_rewrite_and_access": dict(
        # OpenResty: ngx.exit(ngx.OK) ends the phase only
        rewrite='ngx.ctx.r = "r" ngx.exit(ngx.OK) ngx.ctx.r = "after"',
        access='ngx.ctx.a = "a" ngx.exit(ngx.OK) ngx.ctx.a = "after"',
        content='ngx.say(ngx.ctx.r, ngx.ctx.a, "c")',
        body="rac\n"),
    "exit_declined_rewrite_and_access": dict(
        # OpenResty: ngx.exit(ngx.DECLINED) also goes on to the next phase
        rewrite='ngx.ctx.r = "r" ngx.exit(ngx.DECLINED) ngx.ctx.r = "x"',
        access='ngx.ctx.a = "a" ngx.exit(ngx.DECLINED) ngx.ctx.a = "x"',
        content='ngx.say(ngx.ctx.r, ngx.ctx.a, "c")',
        body="rac\n"),
    "exit_ok_content": dict(
        # OpenResty: ngx.exit(ngx.OK) in content ends the response
        content='ngx.say("a") ngx.exit(ngx.OK) ngx.say("b")',
        body="a\n"),
    "no_content_handler": dict(
        # OpenResty: no content handler and no file -> nginx's 404; the
        # header filter and log still run
        rewrite='ngx.ctx.r = 1',
        access='ngx.ctx.a = 1',
        header_filter='ngx.header["X-Status"] = ngx.status '
                      'ngx.header["X-Ctx"] = ngx.ctx.r + ngx.ctx.a',
        log='ngx.log(ngx.NOTICE, "no content log: ", ngx.status)',
        status=404, headers={"X-Status": "404", "X-Ctx": "2"},
        logged=[r"no content log: 404"]),

    # ---- header_filter
    "header_filter_changes": dict(
        # OpenResty: status and headers can still change in header_filter
        content='ngx.header["X-A"] = "a" ngx.say("x")',
        header_filter='ngx.status = 201 ngx.header["X-A"] = nil '
                      'ngx.header["X-B"] = "b" '
                      'ngx.header["Content-Type"] = "text/x"',
        status=201, body="x\n", absent_headers=["X-A"],
        headers={"X-B": "b", "Content-Type": "text/x"}),
    "header_filter_error_page": dict(
        # OpenResty: header_filter sees the 404 of ngx.exit(404) and may
        # turn it into another status
        content='ngx.exit(404)',
        header_filter='ngx.header["X-Was"] = ngx.status ngx.status = 410',
        status=410, headers={"X-Was": "404"}),
    "header_filter_redirect": dict(
        # OpenResty: header_filter sees the redirect's status and Location
        content='ngx.redirect("/elsewhere", 301)',
        header_filter='ngx.header["X-Was"] = ngx.status .. " " '
                      '.. ngx.header.Location '
                      'ngx.header.Location = "/changed" ngx.status = 307',
        status=307, headers={"X-Was": "301 /elsewhere",
                             "Location": "/changed"}),

    # ---- body_filter
    "body_filter_upper": dict(
        content='ngx.say("hello") ngx.print("world")',
        body_filter='ngx.arg[1] = string.upper(ngx.arg[1])',
        body="HELLO\nWORLD"),
    "body_filter_truncate": dict(
        # OpenResty: ngx.arg[2] = true ends the body; later output is
        # dropped
        content='ngx.say("a") ngx.say("b") ngx.say("c")',
        body_filter='if ngx.arg[1] == "b\\n" then ngx.arg[1] = "B" '
                    'ngx.arg[2] = true end',
        body="a\nB"),
    "body_filter_empty_string": dict(
        content='ngx.say("a") ngx.say("b")',
        body_filter='ngx.arg[1] = ""',
        body=""),
    "body_filter_nil": dict(
        content='ngx.say("a") ngx.say("b")',
        body_filter='ngx.arg[1] = nil',
        body=""),
    "body_filter_table": dict(
        # OpenResty: a table of strings (and numbers) is concatenated
        content='ngx.say("a") ngx.say("b")',
        body_filter='ngx.arg[1] = {"<", ngx.arg[1]:sub(1, 1), 1, ">"}',
        body="<a1><b1><1>"),
    "body_filter_eof": dict(
        # OpenResty: each ngx.say is one call; eof comes in a last, empty
        # call
        content='ngx.say("1") ngx.say("2", "x", 3) ngx.print("3")',
        body_filter='ngx.ctx.calls = (ngx.ctx.calls or 0) + 1 '
                    'ngx.ctx.seen = (ngx.ctx.seen or "") .. "[" '
                    '.. ngx.arg[1] .. "|" .. tostring(ngx.arg[2]) .. "]" '
                    'if ngx.arg[2] then ngx.arg[1] = ngx.ctx.calls .. " " '
                    '.. ngx.ctx.seen:gsub("\\n", "n") end',
        body="1\n2x3\n34 [1n|false][2x3n|false][3|false][|true]"),
    "body_filter_empty_print": dict(
        # OpenResty: output of no bytes makes no body filter call
        content='ngx.print("") ngx.print() ngx.print({}) ngx.say()',
        body_filter='ngx.ctx.n = (ngx.ctx.n or 0) + 1 '
                    'if ngx.arg[2] then ngx.arg[1] = ngx.ctx.n end',
        body="\n2"),
    "body_filter_error_page": dict(
        # OpenResty: nginx's error page goes through the body filter too
        content='ngx.exit(403)',
        header_filter='ngx.header.content_length = nil',
        body_filter='if ngx.arg[2] then ngx.arg[1] = "forbidden" '
                    'else ngx.arg[1] = nil end',
        status=403, body="forbidden"),

    # ---- log phase
    "log_phase": dict(
        # OpenResty: log sees the final status and variables; it cannot
        # print (the response is gone)
        content='ngx.status = 202 ngx.say("x")',
        log=ERR_OF + 'ngx.log(ngx.NOTICE, "log phase: ", ngx.status, " ", '
            'ngx.var.uri, " ", ngx.var.args, " ", ngx.var.status, " say: ", '
            'err_of(ngx.say, "late"))',
        request={"path": "{path}?a=1"},
        status=202, body="x\n",
        logged=[r"log phase: 202 /t/log_phase a=1 202 say: API disabled in "
                r"the context of log_by_lua\*"]),

    # ---- APIs a phase may not call
    "disabled_in_header_filter": dict(
        # OpenResty: in header_filter_by_lua* these raise; ngx.exit is
        # allowed there (lua-resty-core)
        content='ngx.say("body")',
        header_filter=DISABLED + """
for k, v in pairs(res) do ngx.header["X-" .. k] = v end
""",
        body="body\n",
        headers={"X-" + k.replace("_", "-"): "API disabled in the context of "
                 "header_filter_by_lua*" for k in DISABLED_NAMES}),
    "disabled_in_body_filter": dict(
        content='ngx.say("body")',
        body_filter=DISABLED + """
if ngx.arg[2] then
    local keys = {}
    for k in pairs(res) do keys[#keys + 1] = k end
    table.sort(keys)
    local out = {}
    for _, k in ipairs(keys) do out[#out + 1] = k .. ": " .. res[k] .. "\\n" end
    ngx.arg[1] = table.concat(out)
end
""",
        body="body\n" + "".join(
            "%s: API disabled in the context of body_filter_by_lua*\n" % k
            for k in sorted(DISABLED_NAMES))),
    "exit_in_body_filter": dict(
        # OpenResty: ngx.exit is disabled in body_filter_by_lua* and
        # log_by_lua* (but allowed in header_filter_by_lua*)
        content='ngx.say("body")',
        body_filter=ERR_OF + 'if ngx.arg[2] then '
                    'ngx.arg[1] = err_of(ngx.exit, 200) end',
        body="body\nAPI disabled in the context of body_filter_by_lua*"),
    "exit_in_log": dict(
        content='ngx.say("body")',
        log=ERR_OF + 'ngx.log(ngx.NOTICE, "exit in log: ", '
            'err_of(ngx.exit, 200))',
        body="body\n",
        logged=[r"exit in log: API disabled in the context of "
                r"log_by_lua\*"]),
    # ---- ngx.ctx
    "ctx_assign_table": dict(
        # OpenResty: ngx.ctx = {...} replaces the table for later phases
        rewrite='ngx.ctx.old = 1 ngx.ctx = {a = "new"}',
        content='ngx.say(ngx.ctx.a, " ", tostring(ngx.ctx.old))',
        body="new nil\n"),
    "ctx_assign_non_table": dict(
        # OpenResty (lua-resty-core): this exact error
        content=ERR_OF + 'ngx.ctx.keep = 1 '
                'ngx.say(err_of(function() ngx.ctx = "str" end)) '
                'ngx.say(err_of(function() ngx.ctx = nil end)) '
                'ngx.say(ngx.ctx.keep)',
        body="ctx should be a table while getting a string\n"
             "ctx should be a table while getting a nil\n1\n"),

    # ---- ngx.exec
    "exec_string_args": dict(
        # OpenResty: the target location runs with the new uri and args;
        # request_uri stays the client's; ngx.ctx starts empty
        rewrite='ngx.ctx.x = 1 ngx.exec("/t/target", "a=1&b=2")',
        request={"path": "{path}?orig=1"},
        body="uri=/t/target args=a=1&b=2 request_uri=/t/exec_string_args"
             "?orig=1\nctx.x=nil\na=1\nb=2\n"),
    "exec_table_args": dict(
        # OpenResty: a table is encoded as by ngx.encode_args
        content='ngx.exec("/t/target", {a = "x y", b = {"1", "2"}})',
        body_re=r"^uri=/t/target args=(a=x%20y&b=1&b=2|b=1&b=2&a=x%20y) "
                r"request_uri=/t/exec_table_args\nctx.x=nil\na=x y\nb=1\|2\n$"),
    "exec_query_in_uri": dict(
        # OpenResty: a '?' in the uri starts the args
        access='ngx.exec("/t/target?q=1")',
        body="uri=/t/target args=q=1 request_uri=/t/exec_query_in_uri\n"
             "ctx.x=nil\nq=1\n"),
    "exec_query_in_uri_and_args": dict(
        # OpenResty: the uri's args, then '&', then the args argument
        content='ngx.exec("/t/target?q=1", "a=2")',
        body="uri=/t/target args=q=1&a=2 "
             "request_uri=/t/exec_query_in_uri_and_args\n"
             "ctx.x=nil\na=2\nq=1\n"),
    "exec_no_args_clears_query": dict(
        # OpenResty: ngx.exec(uri) without args drops the original args
        content='ngx.exec("/t/target")',
        request={"path": "{path}?keep=1"},
        body="uri=/t/target args=nil "
             "request_uri=/t/exec_no_args_clears_query?keep=1\n"
             "ctx.x=nil\n"),
    "exec_after_output": dict(
        # OpenResty: an error once the headers went out
        content=ERR_OF + 'ngx.say("a") ngx.flush() '
                'ngx.say(err_of(ngx.exec, "/t/target"))',
        body="a\nattempt to call ngx.exec after sending out response "
             "headers\n"),
    "exec_internal": dict(
        # OpenResty: ngx.req.is_internal() is true in the exec target
        rewrite='ngx.exec("/t/internal_target")',
        body="true\n"),
    "not_internal": dict(
        content='ngx.say(ngx.req.is_internal())',
        body="false\n"),
    "exec_cycle": dict(
        # OpenResty: after 10 internal redirects, 500 and this error
        rewrite='ngx.exec("/t/exec_cycle")',
        status=500,
        errors=[r'rewrite or internal redirection cycle while internally '
                r'redirecting to "/t/exec_cycle"']),
    "exec_filters_of_target": dict(
        # OpenResty: after ngx.exec the filters and log of the target
        # location run, not those of the first one
        rewrite='ngx.exec("/t/filtered_target")',
        header_filter='ngx.header["X-First"] = "1"',
        body_filter='ngx.arg[1] = "first"',
        headers={"X-Target": "1"}, absent_headers=["X-First"],
        body="TARGET\n"),

    # ---- ngx.redirect
    "redirect_default": dict(
        # OpenResty: 302 and the Location as given
        rewrite='ngx.redirect("/to")',
        content='ngx.say("content")',
        status=302, headers={"Location": "/to"}),
    "redirect_301": dict(
        access='ngx.redirect("http://example.com/a?b=1", 301)',
        status=301, headers={"Location": "http://example.com/a?b=1"}),
    "redirect_307": dict(
        content='ngx.redirect("/t", ngx.HTTP_TEMPORARY_REDIRECT)',
        status=307, headers={"Location": "/t"}),
    "redirect_bad_status": dict(
        # OpenResty: raises this error
        content=ERR_OF + 'ngx.say(err_of(ngx.redirect, "/x", 200))',
        body="only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, "
             "ngx.HTTP_PERMANENT_REDIRECT, ngx.HTTP_SEE_OTHER, and "
             "ngx.HTTP_TEMPORARY_REDIRECT are allowed\n"),

    "redirect_after_output": dict(
        # OpenResty: an error once the headers went out
        content=ERR_OF + 'ngx.say("a") '
                'ngx.say(err_of(ngx.redirect, "/x"))',
        body="a\nattempt to call ngx.redirect after sending out the "
             "headers\n"),
    "redirect_in_header_filter_error_page": dict(
        # OpenResty: ngx.exit(ngx.HTTP_MOVED_TEMPORARILY) with a Location
        # set by hand is a redirect too
        content='ngx.header.Location = "/by-hand" ngx.exit(302)',
        status=302, headers={"Location": "/by-hand"}),

    # ---- ngx.send_headers, ngx.headers_sent, ngx.eof
    "send_headers": dict(
        # OpenResty: headers_sent turns true; send_headers returns 1, and
        # 1 again when called again
        content='local a = ngx.headers_sent '
                'local ok = ngx.send_headers() '
                'local b = ngx.headers_sent '
                'local ok2, err2 = ngx.send_headers() '
                'ngx.say(tostring(a), " ", tostring(ok), " ", tostring(b), '
                '" ", tostring(ok2), " ", tostring(err2))',
        body="false 1 true 1 nil\n"),
    "send_headers_then_status": dict(
        # OpenResty: headers are fixed after send_headers: ngx.status and
        # ngx.header changes are ignored with an error log
        content='ngx.status = 201 ngx.send_headers() ngx.status = 500 '
                'ngx.header["X-Late"] = "1" ngx.say(ngx.status)',
        status=201, body="201\n", absent_headers=["X-Late"],
        errors=[r"attempt to set ngx\.status after sending out response "
                r"headers",
                r"attempt to set ngx\.header\.HEADER after sending out "
                r"response headers"]),
    "eof": dict(
        # OpenResty: ngx.eof ends the response; the handler goes on, and
        # later output returns nil, "seen eof"; eof again does too
        content='ngx.say("a") local ok = ngx.eof() '
                'local ok2, err2 = ngx.say("b") '
                'local ok3, err3 = ngx.eof() '
                'ngx.log(ngx.NOTICE, "after eof: ", tostring(ok), " ", '
                'tostring(ok2), " ", tostring(err2), " ", tostring(ok3), '
                '" ", tostring(err3))',
        body="a\n",
        logged=[r"after eof: 1 nil seen eof nil seen eof"]),
    "eof_body_filter": dict(
        # OpenResty: ngx.eof gives the body filter its eof call
        content='ngx.say("a") ngx.eof()',
        body_filter='if ngx.arg[2] then ngx.arg[1] = ngx.arg[1] .. "eof" '
                    'end',
        body="a\neof"),

    # ---- ngx.resp.get_headers
    "resp_get_headers": dict(
        # OpenResty: lower-case keys (lookups accept any case and '_');
        # repeated headers as a table; raw keeps the case given. (It also
        # lists Connection and, once sent, Transfer-Encoding: framing,
        # not compared.)
        content="""
ngx.header["X-Foo"] = "a"
ngx.header.x_bar = {"1", "2"}
ngx.header["Content-Type"] = "text/x"
local h = ngx.resp.get_headers()
ngx.say(h["x-foo"], " ", h["X-Foo"], " ", h.x_foo, " ", type(h["x-bar"]),
        " ", table.concat(h["x-bar"], "|"), " ", h["content-type"], " ",
        tostring(rawget(h, "X-Foo")))
local raw = ngx.resp.get_headers(0, true)
ngx.say(tostring(raw["X-Foo"]), " ", tostring(raw["x-foo"]), " ",
        type(raw["x-bar"]), " ", tostring(raw["x_bar"]))
""",
        body="a a a table 1|2 text/x nil\n"
             "a nil table nil\n"),
    "resp_get_headers_max": dict(
        # OpenResty: a max smaller than the count returns "truncated"
        content='ngx.header.a = "1" ngx.header.b = "2" ngx.header.c = "3" '
                'local h, err = ngx.resp.get_headers(2) '
                'local n = 0 for _ in pairs(h) do n = n + 1 end '
                'ngx.say(n, " ", tostring(err))',
        body="2 truncated\n"),

    # ---- ngx.status in header_filter and log
    "status_in_filter_and_log": dict(
        content='ngx.status = 203 ngx.say("x")',
        header_filter='ngx.header["X-Status"] = ngx.status',
        log='ngx.log(ngx.NOTICE, "status in log: ", ngx.status)',
        status=203, headers={"X-Status": "203"},
        logged=[r"status in log: 203"]),
    "status_set_in_log": dict(
        # OpenResty: too late; logged as an error, the response stands
        content='ngx.say("x")',
        log='ngx.status = 500 ngx.log(ngx.NOTICE, "log status: ", '
            'ngx.status)',
        body="x\n",
        errors=[r"attempt to set ngx\.status after sending out response "
                r"headers"],
        logged=[r"log status: 200"]),
    "status_default_in_header_filter": dict(
        # OpenResty: 200 once the header goes out without a status set
        content='ngx.say(ngx.status)',
        header_filter='ngx.header["X-Status"] = ngx.status',
        body="0\n", headers={"X-Status": "200"}),

    "disabled_in_log": dict(
        content='ngx.say("body")',
        log=DISABLED + """
local keys = {}
for k in pairs(res) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do ngx.log(ngx.NOTICE, "in log ", k, ": ", res[k]) end
""",
        body="body\n",
        logged=[r"in log %s: API disabled in the context of log_by_lua\*"
                % k for k in DISABLED_NAMES]),
}


def locations():
    locs = []
    for name, case in CASES.items():
        loc = {"match": "= /t/" + name}
        for p in PHASES:
            if p in case:
                loc[p] = case[p]
        locs.append(loc)
    return locs + EXTRA


# Locations that cases reach through ngx.exec.
EXTRA = [
    {"match": "= /t/target", "content": """
ngx.say("uri=", ngx.var.uri, " args=", ngx.var.args,
        " request_uri=", ngx.var.request_uri)
ngx.say("ctx.x=", tostring(ngx.ctx.x))
local a = ngx.req.get_uri_args()
local keys = {}
for k in pairs(a) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
    local v = a[k]
    if type(v) == "table" then v = table.concat(v, "|") end
    ngx.say(k, "=", tostring(v))
end
"""},
]

EXTRA += [
    {"match": "= /t/exit_error_access", "access": "ngx.exit(ngx.ERROR)",
     "content": 'ngx.say("content")'},
    {"match": "= /t/exit_error_content",
     "content": 'ngx.exit(ngx.ERROR)'},
    {"match": "= /t/exit_error_after_flush",
     "content": 'ngx.say("a") ngx.flush(true) ngx.exit(ngx.ERROR)'},
    {"match": "= /t/exit_500_after_flush",
     "content": 'ngx.say("a") ngx.flush(true) ngx.exit(500)'},
    {"match": "= /t/internal_target",
     "content": "ngx.say(ngx.req.is_internal())"},
    {"match": "= /t/filtered_target",
     "content": 'ngx.say("target")',
     "header_filter": 'ngx.header["X-Target"] = "1"',
     "body_filter": "ngx.arg[1] = ngx.arg[1]:upper()"},
]

CONFIG = {
    "lua": {"package_path": LUA_PATH},
    "servers": [{"locations": locations()}],
}


class Phases(ServerTestCase):
    CONFIG = CONFIG

    def run_case(self, name):
        case = CASES[name]
        path = "/t/" + name
        request = dict(case.get("request", {}))
        request["path"] = request.get("path", "{path}").replace(
            "{path}", path)
        for pat in case.get("errors", ()):
            self.expect_log(pat)
        return self.check(self.shared, request, case.get("status", 200),
                          body=case.get("body"), body_re=case.get("body_re"),
                          headers=case.get("headers"),
                          absent_headers=case.get("absent_headers", ()),
                          log=case.get("logged", ()))


    # -- cases that are not one plain request

    def test_exit_error_closes_connection(self):
        # OpenResty: ngx.exit(ngx.ERROR) from access or content closes the
        # connection without sending anything
        for path in ("/t/exit_error_access", "/t/exit_error_content"):
            with self.subTest(path=path):
                data = self.shared.raw(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                        % path).encode())
                self.assertEqual(data, b"")

    def test_exit_error_after_flush_truncates(self):
        # OpenResty: after a flush, ngx.exit(ngx.ERROR) cuts the response
        # short (no last chunk)
        data = self.shared.raw(b"GET /t/exit_error_after_flush HTTP/1.1\r\n"
                               b"Host: t\r\n\r\n")
        with self.assertRaises(IncompleteResponse, msg=repr(data)):
            parse_response(data)

    def test_exit_500_after_flush(self):
        # OpenResty: the 200 and "a" stand, the response ends normally,
        # and this error is logged
        self.expect_log(r"attempt to set status 500 via ngx\.exit after "
                        r"sending out the response status 200")
        self.check(self.shared, {"path": "/t/exit_500_after_flush"}, 200,
                   body="a\n")


def _make_test(name):
    def test(self):
        self.run_case(name)
    test.__doc__ = None
    if CASES[name].get("xfail"):
        test = unittest.expectedFailure(test)
    return test


for _name in CASES:
    setattr(Phases, "test_" + _name, _make_test(_name))


if __name__ == "__main__":
    unittest.main()
