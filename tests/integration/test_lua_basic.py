"""
The ngx.* API of issue 2, with OpenResty's semantics.

Every case below was first run on Debian's nginx 1.22.1 +
libnginx-mod-http-lua (with lua-resty-core) as content_by_lua_block, with
the same request; "OpenResty:" comments record what it answered, and the
expectations are those answers. Only the HTML body of nginx's error pages
(which names nginx) is not compared.

Cases are data: one location "= /t/<name>" per case on one shared server,
and one generated test method per case. Fields of a case:
    lua      the content handler
    request  kwargs for Server.request (default GET /t/<name>), or raw
             bytes sent on a new connection ({path} is replaced)
    status, body, body_re, headers, absent_headers   the expected response
    log      regexes an entry of the error log must match (any level)
    errors   regexes for the [error]-or-worse entries the case must cause
"""

import socket
import time
import unittest

from harness import (ServerTestCase, Server, parse_response,
                     IncompleteResponse)

LUA_PATH = "/usr/share/lua/5.1/?.lua;;"


def raw_get(version="HTTP/1.1", headers="Host: test\r\n", query=""):
    return ("GET {path}%s %s\r\n%sConnection: close\r\n\r\n"
            % (query, version, headers)).encode()


CASES = {
    # ---- ngx.say / ngx.print
    "say_strings": dict(
        lua='ngx.say("hello", " ", "world")',
        body="hello world\n", headers={"Content-Type": "text/plain"}),
    "say_numbers": dict(
        # OpenResty: "12.5-31e+200.1\n"
        lua="ngx.say(1, 2.5, -3, 1e20, 0.1)",
        body="12.5-31e+200.1\n"),
    "say_nil_and_booleans": dict(
        # OpenResty: ngx.say(nil) prints "nil" (no error), booleans too.
        lua="ngx.say(nil) ngx.say(true, false, nil)",
        body="nil\ntruefalsenil\n"),
    "say_null": dict(
        lua="ngx.say(ngx.null)", body="null\n"),
    "say_nested_tables": dict(
        # OpenResty: array tables are flattened recursively; ngx.null and
        # booleans inside them print as "null"/"true"; {} prints nothing.
        lua='ngx.say({"a", {"b", 1, {2.5}}, "c"}) '
            'ngx.say({{{{"deep"}}}, 1}) '
            'ngx.say({"a", ngx.null, true}) '
            'ngx.say({}, "x")',
        body="ab12.5c\ndeep1\nanulltrue\nx\n"),
    "say_table_with_holes": dict(
        # OpenResty: holes in an array table print as "nil" (the table is
        # walked from 1 to its largest integer key)
        lua='ngx.say({"a", nil, "c"}) local t = {"a"} t[5] = "e" ngx.say(t)',
        body="anilc\nanilnilnile\n"),
    "say_hash_table_error": dict(
        # OpenResty: 500, "bad argument #1 to 'say' (non-array table found)"
        lua="ngx.say({a = 1})",
        status=500,
        errors=[r"bad argument #1 to 'say' \(non-array table found\)"]),
    "say_function_error": dict(
        # OpenResty: 500 and this exact message
        lua="ngx.say(print)",
        status=500,
        errors=[r"bad argument #1 to 'say' \(string, number, boolean, nil, "
                r"ngx\.null, or array table expected, but got function\)"]),
    "print_table_with_function_error": dict(
        # OpenResty: "bad argument #1 to 'print' (bad data type function
        # found)"
        lua='ngx.print({"a", print})',
        status=500,
        errors=[r"bad argument #1 to 'print' \(bad data type function "
                r"found\)"]),
    "print_no_newline": dict(
        lua='ngx.print("a", 1, "b") ngx.print({"x", "y"})',
        body="a1bxy"),
    "say_and_print_empty": dict(
        # OpenResty: ngx.say() sends "\n", ngx.print() nothing
        lua="ngx.print() ngx.say() ngx.print()",
        body="\n"),
    "say_returns_1": dict(
        # OpenResty: ngx.say returns the number 1 on success
        lua='local ok, err = ngx.say("x") '
            'ngx.say(type(ok), " ", tostring(ok), " ", tostring(err))',
        body="x\nnumber 1 nil\n"),
    "flush": dict(
        # OpenResty (HTTP/1.1): ngx.flush() and ngx.flush(true) return 1
        lua='ngx.print("a") local ok, err = ngx.flush() '
            'ngx.say(tostring(ok), " ", tostring(err)) '
            'ngx.say(tostring(ngx.flush(true)))',
        body="a1 nil\n1\n"),
    "flush_http10": dict(
        # OpenResty (lua_http10_buffering on by default): on HTTP/1.0 the
        # output is buffered to compute Content-Length, so ngx.flush()
        # returns nil, "buffering"
        lua='ngx.print("a") local ok, err = ngx.flush() '
            'ngx.say(tostring(ok), " ", tostring(err))',
        request=raw_get("HTTP/1.0", ""), body="anil buffering\n",
        headers={"Content-Length": "15"}),
    "status_after_say_http10": dict(
        # OpenResty: with HTTP/1.0 buffering nothing is sent yet, so the
        # status can still change (no error)
        lua='ngx.say("x") ngx.status = 500 ngx.say(ngx.status)',
        request=raw_get("HTTP/1.0", ""), status=500, body="x\n500\n"),
    "header_after_say_http10": dict(
        # OpenResty: same for headers on HTTP/1.0
        lua='ngx.say("x") ngx.header.X_Late = "1"',
        request=raw_get("HTTP/1.0", ""), body="x\n",
        headers={"X-Late": "1"}),
    "error_after_flush_http10": dict(
        # OpenResty: the flush was only buffered, so a later Lua error
        # still gives a 500 (a 200 delimited by the close would look
        # complete to the client)
        lua='ngx.say("before") ngx.flush(true) error("late boom")',
        request=raw_get("HTTP/1.0", ""), status=500,
        errors=[r"late boom"]),
    "explicit_content_length": dict(
        # OpenResty: the handler's Content-Length is used, no chunking
        lua='ngx.header.content_length = 5 ngx.print("hello")',
        body="hello", headers={"Content-Length": "5"},
        absent_headers=["Transfer-Encoding"]),

    # ---- ngx.exit
    "exit_404": dict(
        # OpenResty: 404 with nginx's HTML error page (body not compared)
        lua="ngx.exit(404)", status=404),
    "exit_500": dict(lua="ngx.exit(500)", status=500),
    "exit_200_nothing_sent": dict(
        # OpenResty: 200, empty body
        lua="ngx.exit(200)", status=200, body=""),
    "exit_204": dict(lua="ngx.exit(ngx.HTTP_NO_CONTENT)", status=204,
                     body=""),
    "exit_302_keeps_location": dict(
        lua='ngx.header.location = "/elsewhere" ngx.exit(302)',
        status=302, headers={"Location": "/elsewhere"}),
    "exit_error_page_keeps_headers": dict(
        # OpenResty: headers set before ngx.exit(404) are sent with it
        lua='ngx.header.X_Kept = "yes" ngx.exit(404)',
        status=404, headers={"X-Kept": "yes"}),
    "exit_stops_the_handler": dict(
        lua='ngx.say("a") ngx.exit(200) ngx.say("b")', body="a\n"),
    "exit_not_caught_by_pcall": dict(
        # OpenResty: pcall(ngx.exit, 200) still ends the handler
        lua='local ok, err = pcall(ngx.exit, 200) '
            'ngx.say("after ", tostring(ok), " ", tostring(err))',
        status=200, body=""),
    "exit_ok_keeps_status": dict(
        # OpenResty: ngx.exit(ngx.OK) after output keeps ngx.status
        lua='ngx.status = 201 ngx.say("x") ngx.exit(ngx.OK)',
        status=201, body="x\n"),
    "exit_200_after_status": dict(
        lua='ngx.status = 404 ngx.say("custom") ngx.exit(ngx.HTTP_OK)',
        status=404, body="custom\n"),
    "exit_after_output": dict(
        # OpenResty: 200 "hi\n" and [error] "attempt to set status 404 via
        # ngx.exit after sending out the response status 200"
        lua='ngx.say("hi") ngx.exit(404)',
        status=200, body="hi\n",
        errors=[r"attempt to set status 404 via ngx\.exit after sending "
                r"out the response status 200"]),

    # ---- ngx.status
    "status_get_set": dict(
        # OpenResty: ngx.status reads 0 before it is set in content
        lua="local before = ngx.status ngx.status = 418 "
            'ngx.say(before, " ", ngx.status)',
        status=418, body="0 418\n"),
    "status_string": dict(
        lua='ngx.status = "202" ngx.say(ngx.status)',
        status=202, body="202\n"),
    "status_after_headers_sent": dict(
        # OpenResty (HTTP/1.1): stays 200, logs [error] "attempt to set
        # ngx.status after sending out response headers"
        lua='ngx.say("x") ngx.status = 500 ngx.say(ngx.status)',
        status=200, body="x\n200\n",
        errors=[r"attempt to set ngx\.status after sending out response "
                r"headers"]),

    # ---- ngx.header
    "header_set_get": dict(
        # OpenResty: "_" becomes "-", the name keeps its case on the
        # wire ("X-Foo", "x-num"), a table gives one header per value.
        lua='ngx.header.X_Foo = "bar" '
            'ngx.header["Set-Cookie"] = {"a=1", "b=2"} '
            "ngx.header.x_num = 3 "
            'ngx.say(ngx.header.x_foo, " ", type(ngx.header["set-cookie"]), '
            '" ", tostring(ngx.header.missing))',
        body="bar table nil\n",
        headers={"X-Foo": "bar", "Set-Cookie": ["a=1", "b=2"],
                 "X-Num": "3"},
        wire_names=["X-Foo", "x-num"]),
    "header_clear": dict(
        # OpenResty: nil and {} both remove the header
        lua='ngx.header.X_A = "1" ngx.header.X_A = nil '
            'ngx.header.X_B = "2" ngx.header.X_B = {} '
            'ngx.say(tostring(ngx.header.x_a), " ", '
            "tostring(ngx.header.x_b))",
        body="nil nil\n", absent_headers=["X-A", "X-B"]),
    "header_empty_string_clears": dict(
        # OpenResty: an empty string value removes the header
        lua='ngx.header.X_Empty = "" ngx.say("x")',
        body="x\n", absent_headers=["X-Empty"]),
    "header_content_type_cleared": dict(
        # OpenResty: clearing Content-Type sends none (no default)
        lua='ngx.header.content_type = nil ngx.say("x")',
        body="x\n", absent_headers=["Content-Type"]),
    "header_overwrite": dict(
        lua='ngx.header.X_A = "1" ngx.header["x-a"] = "2" '
            'ngx.say(ngx.header["X-A"])',
        body="2\n", headers={"X-A": "2"}),
    "header_multi_value_get": dict(
        # OpenResty: reading a multi-value header gives a table; a
        # one-element table reads back as a string.
        lua='ngx.header.X_M = {"1", "2"} ngx.header.X_S = {"only"} '
            "local m, s = ngx.header.x_m, ngx.header.x_s "
            'ngx.say(type(m), " ", m[1], m[2], " ", type(s), " ", s)',
        body="table 12 string only\n",
        headers={"X-M": ["1", "2"], "X-S": "only"}),
    "header_boolean": dict(
        lua='ngx.header.X_B = true ngx.say("ok")',
        headers={"X-B": "true"}, body="ok\n"),
    "header_content_type": dict(
        # OpenResty: the default text/plain is not visible to the handler
        # (ngx.header.content_type reads nil), setting it replaces it.
        lua='local before = tostring(ngx.header.content_type) '
            'ngx.header.content_type = "application/json" '
            'ngx.say(before, " ", ngx.header["Content-Type"])',
        body="nil application/json\n",
        headers={"Content-Type": "application/json"}),
    "header_crlf_escaped": dict(
        # OpenResty: CR/LF in a value are sent as %0D%0A (no injection)
        lua='ngx.header.X_Bad = "a\\r\\nInjected: 1" ngx.say("ok")',
        headers={"X-Bad": "a%0D%0AInjected: 1"},
        absent_headers=["Injected"], body="ok\n"),
    "header_after_headers_sent": dict(
        # OpenResty (HTTP/1.1): not sent; [error] "attempt to set
        # ngx.header.HEADER after sending out response headers"
        lua='ngx.say("x") ngx.header.X_Late = "1" ngx.say("y")',
        body="x\ny\n", absent_headers=["X-Late"],
        errors=[r"attempt to set ngx\.header\.HEADER after sending out "
                r"response headers"]),

    # ---- ngx.req
    "req_get_method": dict(
        lua='ngx.say(ngx.req.get_method(), " ", ngx.var.request_method)',
        request={"method": "PATCH"}, body="PATCH PATCH\n"),
    "req_get_method_head": dict(
        lua='ngx.say(ngx.req.get_method())',
        request={"method": "HEAD"}, body="",
        headers={"Content-Type": "text/plain"}),
    "req_get_uri_args": dict(
        # OpenResty: repeated args -> table in order, "b" alone -> true,
        # "c=" -> "", values and keys unescaped ("+" -> " "), "=e" dropped.
        lua="""
local args = ngx.req.get_uri_args()
local keys = {}
for k in pairs(args) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  local v = args[k]
  if type(v) == "table" then
    ngx.say(k, "=table:", table.concat(v, ","))
  else
    ngx.say(k, "=", type(v), ":", tostring(v))
  end
end
""",
        request={"path": "{path}?a=1&b&a=2&c=&d=%20x+y&a=3&=e&f=1=2&%41=z"},
        body="A=string:z\na=table:1,2,3\nb=boolean:true\nc=string:\n"
             "d=string: x y\nf=string:1=2\n"),
    "req_get_uri_args_max": dict(
        # OpenResty: get_uri_args(2) -> 2 args and "truncated"
        lua="local a, err = ngx.req.get_uri_args(2) local n = 0 "
            'for _ in pairs(a) do n = n + 1 end ngx.say(n, " ", tostring(err))',
        request={"path": "{path}?a=1&b=2&c=3"}, body="2 truncated\n"),
    "req_get_headers": dict(
        # OpenResty: lower-case keys, case-insensitive lookup (also with
        # "_" for "-"), repeated headers -> table
        lua="""
local h = ngx.req.get_headers()
ngx.say(h["x-foo"], " ", h.X_Foo, " ", h["X-FOO"], " ", type(h["x-multi"]),
        " ", table.concat(h["x-multi"], ","), " ", h.host, " ",
        tostring(h.nope))
local keys = {}
for k in pairs(h) do keys[#keys + 1] = k end
table.sort(keys)
ngx.say(table.concat(keys, ","))
""",
        request=b"GET {path} HTTP/1.1\r\nHost: example.org\r\nX-Foo: bar\r\n"
                b"X-Multi: 1\r\nx-multi: 2\r\nConnection: close\r\n\r\n",
        body="bar bar bar table 1,2 example.org nil\n"
             "connection,host,x-foo,x-multi\n"),
    "req_get_headers_raw": dict(
        # OpenResty: get_headers(0, true) keeps the client's case and is
        # then case-sensitive
        lua="local h = ngx.req.get_headers(0, true) local keys = {} "
            "for k in pairs(h) do keys[#keys + 1] = k end table.sort(keys) "
            'ngx.say(table.concat(keys, ","), " ", tostring(h["x-foo"]), '
            '" ", tostring(h["X-Foo"]))',
        request=b"GET {path} HTTP/1.1\r\nHost: example.org\r\nX-Foo: bar\r\n"
                b"Connection: close\r\n\r\n",
        body="Connection,Host,X-Foo nil bar\n"),
    "req_http_version_11": dict(
        # OpenResty: a number, 1.1
        lua='local v = ngx.req.http_version() ngx.say(v, " ", type(v))',
        request=raw_get(), body="1.1 number\n"),
    "req_http_version_10": dict(
        # OpenResty: the number 1 (prints "1")
        lua='local v = ngx.req.http_version() ngx.say(v, " ", type(v))',
        request=raw_get("HTTP/1.0", ""), body="1 number\n"),

    # ---- ngx.var
    "var_request": dict(
        # OpenResty: host is lower-cased without the port, arg_* are not
        # unescaped, everything is a string, missing ones are nil.
        lua="""
for _, n in ipairs{"uri", "args", "request_uri", "request_method", "host",
                   "remote_addr", "scheme", "arg_a", "arg_b", "arg_missing",
                   "http_x_foo", "http_user_agent", "http_missing"} do
  local v = ngx.var[n]
  ngx.say(n, "=", type(v), ":", tostring(v))
end
""",
        request=b"GET {path}?a=1&b=%20x HTTP/1.1\r\nHost: Example.ORG:8080\r\n"
                b"X-Foo: bar\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n",
        body_fmt="uri=string:{path}\nargs=string:a=1&b=%20x\n"
                 "request_uri=string:{path}?a=1&b=%20x\n"
                 "request_method=string:GET\nhost=string:example.org\n"
                 "remote_addr=string:127.0.0.1\nscheme=string:http\n"
                 "arg_a=string:1\narg_b=string:%20x\narg_missing=nil:nil\n"
                 "http_x_foo=string:bar\nhttp_user_agent=string:t/1\n"
                 "http_missing=nil:nil\n"),
    "var_no_args": dict(
        # OpenResty: $args is nil without a query string
        lua='ngx.say(tostring(ngx.var.args), " ", ngx.var.request_uri)',
        body_fmt="nil {path}\n"),
    "var_ports": dict(
        # OpenResty: server_port and remote_port are strings
        lua='ngx.say(type(ngx.var.server_port), " ", ngx.var.server_port, '
            '" ", type(ngx.var.remote_port), " ", ngx.var.remote_port)',
        check="ports"),
    "var_uri_is_decoded": dict(
        # OpenResty: GET /t/var_uri_is_decode%64 matches "= /t/
        # var_uri_is_decoded"; $uri is decoded, $request_uri is not.
        lua='ngx.say(ngx.var.uri, " ", ngx.var.request_uri)',
        request={"path": "/t/var_uri_is_decode%64"},
        body="/t/var_uri_is_decoded /t/var_uri_is_decode%64\n"),

    # ---- ngx.log, print
    "log_levels": dict(
        # OpenResty: one entry per call at the call's level, arguments
        # concatenated (nil -> "nil"); print() logs at notice; debug is
        # below the configured info level.
        lua='ngx.log(ngx.ERR, "an error ", 42, " ", nil, " ", true) '
            'ngx.log(ngx.WARN, "a warning") '
            'ngx.log(ngx.NOTICE, "a notice") '
            'ngx.log(ngx.INFO, "some info") '
            'ngx.log(ngx.DEBUG, "debug msg hidden") '
            'print("printed ", 1, nil, true) '
            'ngx.log(ngx.CRIT, "a crit") '
            'ngx.say("ok")',
        body="ok\n",
        log=[r"\[warn\] \d+#\d+: .*a warning",
             r"\[notice\] \d+#\d+: .*a notice",
             r"\[info\] \d+#\d+: .*some info",
             r"\[notice\] \d+#\d+: .*printed 1niltrue"],
        errors=[r"\[error\] \d+#\d+: .*an error 42 nil true",
                r"\[crit\] \d+#\d+: .*a crit"],
        not_logged=[r"debug msg hidden"]),
    "log_bad_level": dict(
        # OpenResty: "bad argument #1 to 'log' (bad log level: 99)"
        lua='ngx.log(99, "x")',
        status=500, errors=[r"bad argument #1 to 'log' \(bad log level: "
                            r"99\)"]),
    "log_table_argument": dict(
        # OpenResty: "bad argument #1 to 'log' (expected table to have
        # __tostring metamethod)"
        lua="ngx.log(ngx.ERR, {})",
        status=500, errors=[r"bad argument #1 to 'log' \(expected table to "
                            r"have __tostring metamethod\)"]),

    # ---- time
    "time": dict(
        # OpenResty: numbers; update_time returns nothing; http_time(0) =
        # "Thu, 01 Jan 1970 00:00:00 GMT"
        lua="""
ngx.say(type(ngx.time()), " ", type(ngx.now()))
ngx.say(math.abs(ngx.time() - os.time()) <= 1)
ngx.say(math.floor(ngx.now()) == ngx.time() or ngx.now() - ngx.time() < 1)
ngx.say(select("#", ngx.update_time()))
ngx.say(ngx.today() == os.date("%Y-%m-%d"))
ngx.say(ngx.http_time(0))
ngx.say(ngx.http_time(1700000000))
ngx.say(ngx.now() * 1000 == math.floor(ngx.now() * 1000))
ngx.say(string.format("%.3f", ngx.now()))
""",
        check="time"),

    # ---- constants, ngx.null, ngx.worker, cjson
    "constants": dict(
        # OpenResty values
        lua="""
ngx.say(ngx.OK, " ", ngx.ERROR, " ", ngx.AGAIN, " ", ngx.DONE, " ",
        ngx.DECLINED)
ngx.say(ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN,
        ngx.NOTICE, ngx.INFO, ngx.DEBUG)
for _, n in ipairs{"HTTP_CONTINUE", "HTTP_SWITCHING_PROTOCOLS", "HTTP_OK",
    "HTTP_CREATED", "HTTP_ACCEPTED", "HTTP_NO_CONTENT",
    "HTTP_PARTIAL_CONTENT", "HTTP_SPECIAL_RESPONSE",
    "HTTP_MOVED_PERMANENTLY", "HTTP_MOVED_TEMPORARILY", "HTTP_SEE_OTHER",
    "HTTP_NOT_MODIFIED", "HTTP_TEMPORARY_REDIRECT",
    "HTTP_PERMANENT_REDIRECT", "HTTP_BAD_REQUEST", "HTTP_UNAUTHORIZED",
    "HTTP_PAYMENT_REQUIRED", "HTTP_FORBIDDEN", "HTTP_NOT_FOUND",
    "HTTP_NOT_ALLOWED", "HTTP_NOT_ACCEPTABLE", "HTTP_REQUEST_TIMEOUT",
    "HTTP_CONFLICT", "HTTP_GONE", "HTTP_UPGRADE_REQUIRED",
    "HTTP_TOO_MANY_REQUESTS", "HTTP_CLOSE", "HTTP_ILLEGAL",
    "HTTP_INTERNAL_SERVER_ERROR", "HTTP_METHOD_NOT_IMPLEMENTED",
    "HTTP_BAD_GATEWAY", "HTTP_SERVICE_UNAVAILABLE", "HTTP_GATEWAY_TIMEOUT",
    "HTTP_VERSION_NOT_SUPPORTED", "HTTP_INSUFFICIENT_STORAGE"} do
  ngx.print(tostring(ngx[n]), " ")
end
""",
        body="0 -1 -2 -4 -5\n012345678\n"
             "100 101 200 201 202 204 206 300 301 302 303 304 307 308 "
             "400 401 402 403 404 405 406 408 409 410 426 429 444 451 "
             "500 501 502 503 504 505 507 "),
    "null": dict(
        # OpenResty: a light userdata NULL, equal to cjson.null
        lua='ngx.say(type(ngx.null), " ", tostring(ngx.null), " ", '
            'tostring(ngx.null == nil), " ", '
            'tostring(require("cjson").null == ngx.null))',
        body="userdata userdata: NULL false true\n"),
    "worker": dict(
        lua='ngx.say(ngx.worker.id(), " ", ngx.worker.count(), " ", '
            'ngx.worker.pid(), " ", type(ngx.worker.pid()))',
        check="worker"),
    "cjson": dict(
        lua='local cjson = require "cjson" '
            "ngx.say(cjson.encode({a = {1, 2, 3}})) "
            "ngx.say(cjson.decode('{\"x\": [true, null]}').x[1])",
        body='{"a":[1,2,3]}\ntrue\n'),

    # ---- Lua errors
    "error_nil_index": dict(
        # OpenResty: 500; [error] "... attempt to index local 't' (a nil
        # value)" followed by "stack traceback:"
        lua="local t = nil return t.field",
        status=500,
        errors=[r"attempt to index local 't' \(a nil value\)"
                r"(.|\n)*stack traceback"]),
    "error_call": dict(
        lua='error("boom")',
        status=500, errors=[r"boom(.|\n)*stack traceback"]),
    "error_table_value": dict(
        # OpenResty: "runtime error: unknown reason"
        lua="error({})",
        status=500, errors=[r"unknown reason"]),
}


def lua_locations():
    return [{"match": "= /t/" + name, "content": case["lua"]}
            for name, case in CASES.items()]


CONFIG = {
    "lua": {"package_path": LUA_PATH},
    "servers": [{"locations": lua_locations() + [
        {"match": "= /pid", "content": "ngx.say(ngx.worker.pid())"},
        {"match": "= /late_error", "content":
            'ngx.say("before") ngx.flush(true) error("late boom")'},
        {"match": "= /late_error_unflushed", "content":
            'ngx.say("before") error("late boom")'},
    ]}],
}


class LuaBasic(ServerTestCase):
    CONFIG = CONFIG

    def run_case(self, name):
        case = CASES[name]
        path = "/t/" + name
        request = case.get("request", {})
        if isinstance(request, bytes):
            request = request.replace(b"{path}", path.encode())
        else:
            request = dict(request)
            request["path"] = request.get("path", "{path}").replace(
                "{path}", path)
        for pat in case.get("errors", ()):
            self.expect_log(pat)
        body = case.get("body")
        if "body_fmt" in case:
            body = case["body_fmt"].replace("{path}", path)
        mark = self.shared.log_mark()
        resp = self.check(self.shared, request, case.get("status", 200),
                          body=body, body_re=case.get("body_re"),
                          headers=case.get("headers"),
                          absent_headers=case.get("absent_headers", ()),
                          log=case.get("log", ()))
        names = [k for k, _ in resp.headers]
        for wire in case.get("wire_names", ()):
            self.assertIn(wire, names, "header name case on the wire")
        for pat in case.get("not_logged", ()):
            for e in self.shared.log_entries(mark):
                self.assertNotRegex(str(e), pat)
        extra = case.get("check")
        if extra:
            getattr(self, "check_" + extra)(resp)

    # -- extra checks for cases whose answer depends on the run

    def check_ports(self, resp):
        t1, sport, t2, rport = resp.body.decode().split()
        self.assertEqual((t1, t2), ("string", "string"))
        self.assertEqual(int(sport), self.shared.port)
        self.assertTrue(1 <= int(rport) <= 65535)

    def check_time(self, resp):
        lines = resp.body.decode().split("\n")
        self.assertEqual(lines[:8], [
            "number number", "true", "true", "0", "true",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Tue, 14 Nov 2023 22:13:20 GMT", "true"], resp.body)
        self.assertLess(abs(float(lines[8]) - time.time()), 2)

    def check_worker(self, resp):
        wid, count, pid, typ = resp.body.decode().split()
        self.assertEqual((wid, count, typ), ("0", "1", "number"))
        self.assertEqual(self.shared.worker_pids(), [int(pid)])

    # -- tests that are not one request

    def worker_pid(self, conn=None):
        return int(self.shared.request("GET", "/pid", conn=conn).body)

    def test_lua_error_worker_keeps_serving(self):
        self.expect_log(r"boom")
        before = self.worker_pid()
        self.check(self.shared, {"path": "/t/error_call"}, 500)
        self.assertEqual(self.worker_pid(), before)
        self.assertEqual(self.shared.worker_pids(), [before])

    def test_lua_error_on_keepalive_connection(self):
        # After a 500 from a Lua error the connection may be reused
        # (nginx keeps it) or closed; either way the next request works.
        self.expect_log(r"boom")
        conn = self.shared.connection()
        try:
            status, _, _ = self.shared.request("GET", "/t/error_call",
                                               conn=conn)
            self.assertEqual(status, 500)
            self.assertEqual(self.shared.request("GET", "/t/say_strings",
                                                 conn=conn).body,
                             b"hello world\n")
        finally:
            conn.close()

    def test_exit_404_connection_stays_usable(self):
        # OpenResty keeps the keep-alive connection after ngx.exit(404).
        with self.shared.conn() as c:
            c.send(b"GET /t/exit_404 HTTP/1.1\r\nHost: test\r\n\r\n")
            self.assertEqual(c.response().status, 404)
            c.send(b"GET /t/say_strings HTTP/1.1\r\nHost: test\r\n\r\n")
            self.assertEqual(c.response().body, b"hello world\n")

    def test_error_after_headers_sent(self):
        # OpenResty: the headers and "before" were flushed; the error then
        # aborts the connection without the last chunk, so the client
        # can tell the response is truncated. Unflushed, nginx sent
        # nothing at all. A complete 200 would hide the failure.
        self.expect_log(r"late boom")
        for path in ("/late_error", "/late_error_unflushed"):
            with self.subTest(path=path):
                data = self.shared.raw(("GET %s HTTP/1.1\r\nHost: test\r\n"
                                        "\r\n" % path).encode())
                try:
                    resp, _ = parse_response(data)
                except IncompleteResponse:
                    continue  # truncated: good
                self.assertNotEqual(resp.status, 200,
                                    "complete 200 after a Lua error: %r"
                                    % data)


def _make_test(name):
    def test(self):
        self.run_case(name)
    test.__doc__ = None
    return test


for _name in CASES:
    setattr(LuaBasic, "test_" + _name, _make_test(_name))


class MultipleWorkers(ServerTestCase):

    def test_all_workers_serve(self):
        # Each request burns ~20 ms of CPU so that one worker cannot take
        # every connection; new connections, concurrently, bounded.
        srv = self.server({
            "cluster": {"workers": 2},
            "servers": [{"locations": [{"match": "= /w", "content": """
local t0 = os.clock()
while os.clock() - t0 < 0.02 do end
ngx.say(ngx.worker.pid(), " ", ngx.worker.id(), " ", ngx.worker.count())
"""}]}]})
        workers = srv.wait_workers(2)
        seen = {}
        deadline = time.monotonic() + 15
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            while len(seen) < 2 and time.monotonic() < deadline:
                futs = [pool.submit(srv.request, "GET", "/w")
                        for _ in range(8)]
                for f in futs:
                    status, headers, body = f.result()
                    self.assertEqual(status, 200)
                    pid, wid, count = body.decode().split()
                    self.assertEqual(count, "2")
                    seen[int(pid)] = wid
        self.assertEqual(sorted(seen), sorted(workers))
        self.assertEqual(sorted(seen.values()), ["0", "1"])


if __name__ == "__main__":
    unittest.main()
