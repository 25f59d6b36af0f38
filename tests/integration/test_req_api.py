"""
ngx.req.* and ngx.var of issue 4 ("Request API"), with OpenResty's results.

Every case in CASES was first run on Debian's nginx 1.22.1 +
libnginx-mod-http-lua 0.10.23 (with lua-resty-core) as content_by_lua_block
on a server named "test", with the same raw request; "OpenResty:" comments
record what it answered where that is surprising, and the expected bodies
are its answers. Differences are listed in the NOT_OPENRESTY cases.

Cases are data: one location "= /t/<name>" per case on one shared server,
and one generated test method per case. Fields of a case:
    lua      the content handler
    request  raw bytes sent on a new connection (default: GET {path});
             {path} is replaced, and {len} by the length of the body
    status, body, body_re   the expected response
    errors   regexes for the [error]-or-worse entries the case must cause
The body spooling and jump cases need their own checks and are methods.
"""

import os
import time
import unittest

from harness import ServerTestCase, parse_response

LUA_PATH = "/usr/share/lua/5.1/?.lua;;"
BODY_BUFFER = 16384  # client_body_buffer_size's default


def get(query="", headers=""):
    return ("GET {path}%s HTTP/1.1\r\nHost: test\r\n%sConnection: close"
            "\r\n\r\n" % (query, headers)).encode()


def post(body, ctype="application/x-www-form-urlencoded"):
    if isinstance(body, str):
        body = body.encode()
    return (b"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: "
            + ctype.encode() + b"\r\nContent-Length: {len}\r\n"
            b"Connection: close\r\n\r\n" + body)


def chunked(*chunks):
    out = (b"POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: "
           b"chunked\r\nConnection: close\r\n\r\n")
    for c in chunks:
        out += b"%x\r\n%s\r\n" % (len(c), c)
    return out + b"0\r\n\r\n"


# Sorted "k=v" of a table, arrays as [a,b]: pairs() order is not part of
# the API.
SHOW = (
    'local function show(t) local ks = {} for k in pairs(t) do '
    'ks[#ks+1] = k end table.sort(ks) local o = {} for _, k in ipairs(ks) '
    'do local v = t[k] if type(v) == "table" then v = "[" .. '
    'table.concat(v, ",") .. "]" end o[#o+1] = k .. "=" .. tostring(v) end '
    'return table.concat(o, " ") end ')

CASES = {
    # ---- set_method
    "set_method": dict(
        lua='ngx.req.set_method(ngx.HTTP_POST) '
            'ngx.say(ngx.req.get_method(), ngx.var.request_method) '
            'local ok, e = pcall(ngx.req.set_method, 12345) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_method, "POST") ngx.say(e) '
            'ok, e = pcall(ngx.req.set_method) ngx.say(e)',
        # OpenResty: a string or nothing is "bad method number"
        body="POSTPOST\nunsupported HTTP method: 12345\nbad method number\n"
             "bad method number\n"),
    "set_method_all": dict(
        lua='local t = {} for _, m in ipairs{"HTTP_GET", "HTTP_HEAD", '
            '"HTTP_PUT", "HTTP_POST", "HTTP_DELETE", "HTTP_OPTIONS", '
            '"HTTP_MKCOL", "HTTP_COPY", "HTTP_MOVE", "HTTP_PROPFIND", '
            '"HTTP_PROPPATCH", "HTTP_LOCK", "HTTP_UNLOCK", "HTTP_PATCH", '
            '"HTTP_TRACE"} do ngx.req.set_method(ngx[m]) '
            't[#t+1] = ngx[m] .. " " .. ngx.req.get_method() end '
            'ngx.req.set_method(ngx.HTTP_GET) ngx.say(table.concat(t, ","))',
        body="2 GET,4 HEAD,16 PUT,8 POST,32 DELETE,512 OPTIONS,64 MKCOL,"
             "128 COPY,256 MOVE,1024 PROPFIND,2048 PROPPATCH,4096 LOCK,"
             "8192 UNLOCK,16384 PATCH,32768 TRACE\n"),

    # ---- set_uri_args
    "set_uri_args": dict(
        lua=SHOW + 'ngx.req.set_uri_args("a=1&b=%20x") '
            'ngx.say(ngx.var.args, "|", ngx.var.request_uri, "|", '
            'show(ngx.req.get_uri_args()), "|", ngx.var.arg_b) '
            'ngx.req.set_uri_args({}) ngx.say(ngx.var.args, ngx.var.is_args) '
            'ngx.req.set_uri_args("") ngx.say(ngx.var.args == "") '
            'ngx.req.set_uri_args(12) ngx.say(ngx.var.args)',
        request=get("?q=1"),
        # OpenResty: request_uri keeps the original; args set to "" read
        # "" (not nil)
        body="a=1&b=%20x|/t/set_uri_args?q=1|a=1 b= x|%20x\n\ntrue\n12\n"),
    "set_uri_args_table": dict(
        lua='ngx.req.set_uri_args({k = {true, false, "x", 3}, f = false}) '
            'ngx.say(ngx.var.args) ngx.req.set_uri_args({k = 1.5}) '
            'ngx.say(ngx.var.args) ngx.req.set_uri_args({k = {}}) '
            'ngx.say(ngx.var.args, "|") ngx.req.set_uri_args({k = ""}) '
            'ngx.say(ngx.var.args, "|") '
            'ngx.req.set_uri_args({k = 100000000000000}) '
            'ngx.say(ngx.var.args) ngx.req.set_uri_args({k = "x y"}) '
            'ngx.say(ngx.var.args, " ", ngx.req.get_uri_args().k)',
        body="k&k=x&k=3\nk=1.5\n|\nk=|\nk=1e%2B14\nk=x%20y x y\n"),
    "set_uri_args_escape": dict(
        lua='local s = "" for i = 32, 126 do s = s .. string.char(i) end '
            'ngx.req.set_uri_args({k = s}) ngx.say(ngx.var.args) '
            'ngx.req.set_uri_args({[s] = "1"}) ngx.say(ngx.var.args) '
            'ngx.say(ngx.req.get_uri_args()[s])',
        body="k=%20!%22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E"
             "%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmn"
             "opqrstuvwxyz%7B%7C%7D~\n"
             "%20!%22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E"
             "%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmn"
             "opqrstuvwxyz%7B%7C%7D~=1\n1\n"),
    "set_uri_args_errors": dict(
        lua='local ok, e = pcall(ngx.req.set_uri_args) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri_args, true) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri_args, {k = print}) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri_args, {k = {print}}) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri_args, {"a", "b"}) ngx.say(e) '
            'ngx.say(ngx.var.args)',
        request=get("?q=1"),
        body="expecting 1 argument but seen 0\n"
             "bad argument #1 to '?' (string, number, or table expected, "
             "but got boolean)\n"
             "attempt to use function as query arg value\n"
             "attempt to use function as query arg value\n"
             "attempt to use a non-string key in the \"args\" option table\n"
             "q=1\n"),
    "var_args_then_get_uri_args": dict(
        lua='ngx.var.args = "z=1" ngx.say(ngx.req.get_uri_args().z) '
            'ngx.req.set_uri_args("") ngx.say(ngx.var.args == "", '
            'ngx.var.arg_z)',
        request=get("?q"),
        body="1\ntruenil\n"),

    # ---- set_uri
    "set_uri": dict(
        lua='ngx.req.set_uri("/foo bar/../x") ngx.say(ngx.var.uri, "|", '
            'ngx.var.request_uri, "|", ngx.var.args) '
            'ngx.req.set_uri("/y", false, true) ngx.say(ngx.var.uri) '
            'ngx.req.set_uri(42) ngx.say(ngx.var.uri) '
            'ngx.req.set_uri("/a?b=1") ngx.say(ngx.var.uri, " ", ngx.var.args) '
            'ngx.req.set_uri("/a b\\0c", false, true) '
            'ngx.say(#ngx.var.uri)',
        request=get("?q=1"),
        # OpenResty: the URI is taken as is: no decoding or normalizing,
        # '?' is part of it
        body="/foo bar/../x|/t/set_uri?q=1|q=1\n/y\n42\n/a?b=1 q=1\n6\n"),
    "set_uri_errors": dict(
        lua='local ok, e = pcall(ngx.req.set_uri, "") ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri, "/a", true) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri, "/a\\nb") ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri, {}) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_uri, "/\\"\\\\\\1\\127\\255") '
            'ngx.say(e) ngx.say(ngx.var.uri)',
        body="attempt to use zero-length uri\n"
             "expecting 1, 2 or 3 arguments but seen 0\n"
             "API disabled in the context of content_by_lua*\n"
             "unsafe byte \"0x0a\" in uri \"/a\\x0Ab\" (maybe you want to "
             "set the 'binary' argument?)\n"
             "bad argument #1 to '?' (string expected, got table)\n"
             "unsafe byte \"0x01\" in uri \"/\\x22\\x5C\\x01\\x7F\\xFF\" "
             "(maybe you want to set the 'binary' argument?)\n"
             "/t/set_uri_errors\n"),
    "set_uri_unsafe_bytes": dict(
        lua='local bad = {} for i = 0, 255 do local ok = pcall('
            'ngx.req.set_uri, "/a" .. string.char(i)) if not ok then '
            'bad[#bad+1] = i end end ngx.say(table.concat(bad, ","))',
        body="0,1,2,3,4,5,6,7,8,10,11,12,13,14,15,16,17,18,19,20,21,22,23,"
             "24,25,26,27,28,29,30,31,127\n"),

    # ---- request headers
    "set_header": dict(
        lua=SHOW + 'ngx.req.set_header("X-Foo", "bar") '
            'ngx.req.set_header("accept", "a1") '
            'ngx.req.set_header("X-Multi", {"m1", "m2"}) '
            'ngx.req.set_header("X-Num", 12) '
            'ngx.req.clear_header("User-Agent") '
            'ngx.req.set_header("X-Dup", nil) '
            'ngx.req.set_header("X-Empty", "") '
            'ngx.say(show(ngx.req.get_headers())) '
            'ngx.say(ngx.var.http_x_foo, ngx.var.http_accept, '
            'ngx.var.http_x_multi, ngx.var.http_user_agent, '
            'ngx.var.http_x_dup, ngx.var.http_x_empty)',
        request=get(headers="Accept: a0\r\nUser-Agent: ua\r\nX-Dup: 1\r\n"
                            "X-Dup: 2\r\nX-Empty: e\r\n"),
        # OpenResty: "" removes the header like nil
        body="accept=a1 connection=close host=test x-foo=bar x-multi=[m1,m2] "
             "x-num=12\nbara1m1nilnilnil\n"),
    "set_header_order": dict(
        lua='ngx.req.set_header("X-Dup", "3") ngx.req.set_header("New", "n") '
            'ngx.req.set_header("x-dup", {"4", "5"}) '
            'local h = ngx.req.get_headers(0, true) ngx.say(h["X-Dup"], " ", '
            'h["x-dup"], " ", ngx.var.http_x_dup) '
            'ngx.print(ngx.req.raw_header())',
        request=get(headers="X-Dup: 1\r\nX-A: a\r\nX-Dup: 2\r\n"),
        # OpenResty: the first header of the name keeps its place (and its
        # spelling), later values go to the end; raw_header is unchanged
        body="4 5 4\nGET /t/set_header_order HTTP/1.1\r\nHost: test\r\n"
             "X-Dup: 1\r\nX-A: a\r\nX-Dup: 2\r\nConnection: close\r\n\r\n"),
    "set_header_host": dict(
        lua='ngx.req.set_header("Host", "Foo.COM:8080") ngx.say(ngx.var.host, '
            '" ", ngx.var.http_host, " ", ngx.req.get_headers().host) '
            'ngx.req.clear_header("Host") ngx.say(ngx.var.host, " ", '
            'ngx.var.http_host, " ", ngx.req.get_headers().host)',
        # OpenResty: $host follows the new Host (lower case, no port), and
        # falls back to the server name once it is cleared
        body="foo.com Foo.COM:8080 Foo.COM:8080\ntest nil nil\n"),
    "set_header_args": dict(
        lua='local ok, e = pcall(ngx.req.set_header) ngx.say(e) '
            'ok, e = pcall(ngx.req.set_header, nil, "x") ngx.say(e) '
            'ngx.say(pcall(ngx.req.set_header, "a")) '
            'ngx.say(pcall(ngx.req.set_header, "a", {})) '
            'ngx.say(pcall(ngx.req.clear_header)) '
            'ngx.req.set_header("a", "x\\ny") ngx.say(ngx.var.http_a) '
            'ngx.req.set_header("x_y", "1") ngx.say(ngx.var.http_x_y, '
            'ngx.req.get_headers(0, true)["x_y"]) '
            'ngx.req.set_header(12, 13) ngx.say(ngx.var.http_12) '
            'ngx.req.set_header("x-t", {"a", 1, true}) '
            'ngx.say(table.concat(ngx.req.get_headers()["x-t"], ","))',
        # OpenResty: CR/LF in values become %0D/%0A
        body="bad 'name' argument: string expected, got nil\n"
             "bad 'name' argument: string expected, got nil\n"
             "true\ntrue\ntrue\nx%0Ay\n11\n13\na,1,true\n"),
    "set_header_escape": dict(
        lua='local s = "" for i = 1, 255 do s = s .. string.char(i) end '
            'ngx.req.set_header("x" .. s, "v" .. s) '
            'for k, v in pairs(ngx.req.get_headers(0, true)) do '
            'if k:sub(1, 1) == "x" then ngx.say(k) ngx.say(v) end end',
        body=(
            "x%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14"
            "%15%16%17%18%19%1A%1B%1C%1D%1E%1F%20!%22#$%&'%28%29*+%2C-.%2F"
            "0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B"
            "%5C%5D^_`abcdefghijklmnopqrstuvwxyz%7B|%7D~"
            + "".join("%%%02X" % i for i in range(0x7f, 0x100)) + "\n"
            "v%01%02%03%04%05%06%07%08\t%0A%0B%0C%0D%0E%0F%10%11%12%13%14"
            "%15%16%17%18%19%1A%1B%1C%1D%1E%1F !\"#$%&'()*+,-./0123456789"
            ":;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstu"
            "vwxyz{|}~%7F").encode("latin-1")
            + bytes(range(0x80, 0x100)) + b"\n"),
    "get_headers_raw": dict(
        lua=SHOW + 'ngx.say(show(ngx.req.get_headers(0, true)))',
        request=get(headers="X-Foo: 1\r\nx-foo: 2\r\n"),
        body="Connection=close Host=test X-Foo=1 x-foo=2\n"),

    # ---- raw_header
    "raw_header": dict(
        lua='ngx.print(ngx.req.raw_header()) ngx.print("|") '
            'ngx.print(ngx.req.raw_header(true))',
        request=(b"GET {path}?a=1 HTTP/1.1\r\nHost: test\r\nX-A:  b\r\n"
                 b"X_Under: dropped but raw\r\nConnection: close\r\n\r\n"),
        body="GET /t/raw_header?a=1 HTTP/1.1\r\nHost: test\r\nX-A:  b\r\n"
             "X_Under: dropped but raw\r\nConnection: close\r\n\r\n|"
             "Host: test\r\nX-A:  b\r\nX_Under: dropped but raw\r\n"
             "Connection: close\r\n\r\n"),
    "raw_header_lf": dict(
        lua='ngx.print(ngx.req.raw_header()) ngx.print("|") '
            'ngx.print(ngx.req.raw_header(true)) ngx.print("|")',
        request=b"GET {path} HTTP/1.0\nHost: x\nX-A: 1\n\n",
        body="GET /t/raw_header_lf HTTP/1.0\nHost: x\nX-A: 1\n\n|"
             "Host: x\nX-A: 1\n\n|"),
    "raw_header_http10": dict(
        lua='ngx.print(ngx.req.raw_header()) ngx.print("|")',
        request=b"GET {path} HTTP/1.0\r\n\r\n",
        body="GET /t/raw_header_http10 HTTP/1.0\r\n\r\n|"),
    "raw_header_with_body": dict(
        lua='ngx.req.read_body() ngx.print(ngx.req.raw_header(true))',
        request=post("a=1"),
        body="Host: test\r\nContent-Type: application/x-www-form-urlencoded"
             "\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"),

    # ---- body
    "post_args": dict(
        lua=SHOW + 'ngx.req.read_body() ngx.say(show(ngx.req.get_post_args()))',
        request=post("a=1&a=2&b&c=&=x&%41+b=c%20d&&e=%zz+f"),
        # OpenResty: repeated keys make arrays, a bare key is true, empty
        # keys are dropped, '+' is a space, a bad escape stays
        body="A b=c d a=[1,2] b=true c= e=%zz f\n"),
    "post_args_max": dict(
        lua='ngx.req.read_body() local a, e = ngx.req.get_post_args(2) '
            'ngx.say(a.a, a.b, a.c, e) a, e = ngx.req.get_post_args(0) '
            'ngx.say(a.c, e) a, e = ngx.req.get_post_args(-1) ngx.say(a.c, e)',
        request=post("a=1&b=2&c=3"),
        body="12niltruncated\n3nil\n3nil\n"),
    "post_args_any_type": dict(
        lua='ngx.req.read_body() ngx.say(ngx.req.get_post_args().a)',
        request=post("a=1", "text/plain"),
        body="1\n"),
    "post_args_not_read": dict(
        lua='local ok, e = pcall(ngx.req.get_post_args) ngx.say(ok, e)',
        request=post("a=1"),
        body="falseno request body found; maybe you should turn on "
             "lua_need_request_body?\n"),
    "post_args_get_not_read": dict(
        lua='local ok, e = pcall(ngx.req.get_post_args) ngx.say(ok, e)',
        body="falseno request body found; maybe you should turn on "
             "lua_need_request_body?\n"),
    "post_args_no_body": dict(
        lua='ngx.req.read_body() local a, e = ngx.req.get_post_args() '
            'ngx.say(type(a), e, next(a)) '
            'ngx.say(ngx.req.get_body_data(), ngx.req.get_body_file())',
        body="tablenilnil\nnilnil\n"),
    "post_args_empty_body": dict(
        lua='ngx.req.read_body() ngx.say(ngx.req.get_body_data(), '
            'ngx.req.get_body_file(), next(ngx.req.get_post_args()))',
        request=post(""),
        body="nilnilnil\n"),
    "post_args_chunked": dict(
        lua='ngx.req.read_body() local a = ngx.req.get_post_args() '
            'ngx.say(a.x, a.y, " ", ngx.req.get_body_data())',
        request=chunked(b"x=1", b"&y=", b"2"),
        body="12 x=1&y=2\n"),
    "body_not_read": dict(
        lua='ngx.say(ngx.req.get_body_data(), " ", ngx.req.get_body_file())',
        request=post("a=1"),
        body="nil nil\n"),
    "discard_body": dict(
        lua='ngx.req.discard_body() local ok, a = pcall(ngx.req.get_post_args) '
            'ngx.say(ok, a) ngx.say(ngx.req.get_body_data())',
        request=post("a=1"),
        body="falseno request body found; maybe you should turn on "
             "lua_need_request_body?\nnil\n"),
    "read_then_discard": dict(
        lua='ngx.req.read_body() ngx.req.discard_body() '
            'ngx.say(ngx.req.get_body_data(), " ", '
            'ngx.req.get_post_args().a)',
        request=post("a=1"),
        # OpenResty: discarding a body already read changes nothing
        body="a=1 1\n"),
    "set_body_data": dict(
        lua='ngx.req.read_body() ngx.req.set_body_data("x=1&y=2") '
            'ngx.say(ngx.req.get_body_data()) local a = ngx.req.get_post_args() '
            'ngx.say(a.x, a.y, ngx.var.content_length, '
            'ngx.req.get_headers()["content-length"], ngx.var.request_body)',
        request=post("a=1"),
        # OpenResty: Content-Length follows the new body
        body="x=1&y=2\n1277x=1&y=2\n"),
    "set_body_data_empty": dict(
        lua='ngx.req.read_body() ngx.req.set_body_data("") '
            'ngx.say(ngx.req.get_body_data(), ngx.var.content_length)',
        request=post("a=1"),
        body="nil0\n"),
    "set_body_data_errors": dict(
        lua='local ok, e = pcall(ngx.req.set_body_data, "abc") ngx.say(e) '
            'ngx.req.read_body() ok, e = pcall(ngx.req.set_body_data, {}) '
            'ngx.say(e) ok, e = pcall(ngx.req.set_body_data) ngx.say(e) '
            'ngx.req.set_body_data(12) ngx.say(ngx.req.get_body_data())',
        request=post("a=1"),
        body="request body not read yet\n"
             "bad argument #1 to '?' (string expected, got table)\n"
             "expecting 1 arguments but seen 0\n12\n"),
    "set_body_data_get": dict(
        lua='ngx.req.read_body() ngx.req.set_body_data("abc") '
            'ngx.say(ngx.req.get_body_data())',
        body="abc\n"),
    "set_body_file_errors": dict(
        lua='local ok, e = pcall(ngx.req.set_body_file, "/etc/hostname") '
            'ngx.say(e) ngx.req.read_body() '
            'ok, e = pcall(ngx.req.set_body_file, "/nonexistent") ngx.say(e)',
        request=post("a=1"),
        body="request body not read yet\nstat() \"/nonexistent\" failed\n"),

    # ---- misc
    "start_time": dict(
        lua='local t = ngx.req.start_time() ngx.say(type(t), " ", '
            't == math.floor(t * 1000 + 0.5) / 1000, " ", ngx.now() - t < 1, '
            '" ", ngx.now() >= t)',
        body="number true true true\n"),
    "is_internal": dict(
        lua='ngx.say(ngx.req.is_internal())',
        body="false\n"),

    # ---- ngx.var
    "var_cookie": dict(
        lua='ngx.say(ngx.var.cookie_a, "|", ngx.var.cookie_b, "|", '
            'ngx.var.cookie_C, "|", ngx.var.cookie_d, "|", ngx.var.cookie_e, '
            '"|", ngx.var.cookie_x, "|", ngx.var.http_cookie)',
        request=get(headers="Cookie: a=1; b=two; C=3\r\nCookie: d=4;e=\r\n"),
        # OpenResty: names compare case-insensitively, every Cookie header
        # is searched, an empty value is ""
        body="1|two|3|4||nil|a=1; b=two; C=3; d=4;e=\n"),
    "var_request_length": dict(
        lua='ngx.req.read_body() ngx.say(ngx.var.request_length, " ", '
            'ngx.var.request_body, " ", ngx.var.request_body_file)',
        request=post("a=1"),
        body="141 a=1 nil\n"),
    "var_misc": dict(
        lua='ngx.say(ngx.var.request_length, " ", ngx.var.content_type, " ", '
            'ngx.var.content_length, " ", ngx.var.request, " ", '
            'ngx.var.document_uri, " ", ngx.var.is_args, " ", '
            'ngx.var.request_body, " ", ngx.var.server_name, " ", '
            'ngx.var.https, "|", ngx.var.limit_rate)',
        request=get("?a=1"),
        body="63 nil nil GET /t/var_misc?a=1 HTTP/1.1 /t/var_misc ? nil "
             "test |0\n"),
    "var_empty_args": dict(
        lua='ngx.say(ngx.var.args, "|", ngx.var.is_args, "|", '
            'ngx.var.request_uri)',
        request=get("?"),
        body="nil||/t/var_empty_args?\n"),
    "var_read_only": dict(
        lua='local ok, e = pcall(function() ngx.var.uri = "/x" end) ngx.say(e) '
            'ok, e = pcall(function() ngx.var.request_uri = "/x" end) '
            'ngx.say(e) ok, e = pcall(function() ngx.var.arg_a = "1" end) '
            'ngx.say(e) ok, e = pcall(function() ngx.var.cookie_a = "1" end) '
            'ngx.say(e) ngx.var.limit_rate = "100" ngx.say(ngx.var.limit_rate)',
        body_re=r"^\S+: variable \"uri\" not changeable\n"
                r"\S+: variable \"request_uri\" not changeable\n"
                r"\S+: variable \"arg_a\" not found for writing; maybe it is a "
                r"built-in variable that is not changeable or you forgot to "
                r"use \"set \$arg_a '';\" in the config file to define it "
                r"first\n"
                r"\S+: variable \"cookie_a\" not found for writing; .*\n"
                r"100\n$"),
}

# moonpool choices where OpenResty's answer cannot apply (documented in
# lua/api_var.c and worker/body.c).
NOT_OPENRESTY = {
    "user_variable": dict(
        # OpenResty raises "variable "foo" not found for writing" unless
        # nginx.conf has "set $foo '';" moonpool has no "set": any name
        # that is not a built-in is a user variable.
        lua='ngx.say(ngx.var.foo) ngx.var.foo = "x" ngx.var.Bar = 12 '
            'ngx.say(ngx.var.foo, ngx.var.bar) ngx.var.foo = nil '
            'ngx.say(ngx.var.foo)',
        body="nil\nx12\nnil\n"),
    "var_request_length_chunked": dict(
        # nginx counts the chunk framing too (126 here)
        lua='ngx.req.read_body() ngx.say(ngx.req.get_body_data(), " ", '
            'ngx.var.request_length)',
        request=chunked(b"abc", b"de"),
        body="abcde 111\n"),
}


def locations():
    locs = [{"match": "= /t/" + name, "content": case["lua"]}
            for name, case in list(CASES.items())
            + list(NOT_OPENRESTY.items())]
    return locs + [
        {"match": "= /spool", "content": SPOOL_LUA},
        {"match": "= /set_over_file", "content":
            'ngx.req.read_body() local f = ngx.req.get_body_file() '
            'ngx.req.set_body_data("hello") ngx.say(ngx.req.get_body_data(), '
            '" ", ngx.req.get_body_file(), " ", io.open(f) == nil)'},
        {"match": "= /jump",
         "rewrite": 'ngx.req.set_uri("/target", true) ngx.say("not reached")',
         "content": 'ngx.say("jump content")'},
        {"match": "= /jumpargs",
         "rewrite": 'ngx.req.set_uri_args({a = "1"}) '
                    'ngx.req.set_uri("/target", true)'},
        {"match": "= /nojump",
         "rewrite": 'ngx.req.set_uri("/target", false)',
         "content": 'ngx.say("stay ", ngx.var.uri)'},
        {"match": "= /target", "content":
            'ngx.say(ngx.var.uri, " ", ngx.var.args, " ", '
            'ngx.req.is_internal(), " ", ngx.var.request_uri)'},
        {"match": "= /uservar",
         "rewrite": 'ngx.var.who = "rewrite"',
         "content": 'ngx.say(ngx.var.who)',
         "log": 'ngx.log(ngx.NOTICE, "uservar in log: ", ngx.var.who)'},
    ]


# Reports where the body is and checks the file while the request runs.
SPOOL_LUA = """
ngx.req.read_body()
local path = ngx.req.get_body_file()
local size = -1
if path then
    local f = io.open(path, "rb")
    if f then
        local data = f:read("*a")
        f:close()
        size = #data
        if data ~= string.rep("0123456789", #data / 10) then
            size = -2
        end
    end
end
local a, e = ngx.req.get_post_args()
ngx.say(tostring(ngx.req.get_body_data() and #ngx.req.get_body_data()), "|",
        tostring(path), "|", size, "|", tostring(e), "|",
        ngx.var.request_body_file == path, "|", ngx.var.request_length)
"""


class ReqApi(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.CONFIG = {
            "lua": {"package_path": LUA_PATH},
            "http": {"client_body_temp_path": "{prefix}/body_temp"},
            "servers": [{"server_names": ["test"],
                         "locations": locations()}],
        }
        super().setUpClass()
        os.makedirs(cls.temp_dir(), exist_ok=True)

    @classmethod
    def temp_dir(cls):
        return os.path.join(cls.shared.prefix, "body_temp")

    def run_case(self, case, name):
        path = "/t/" + name
        request = case.get("request", get())
        request = request.replace(b"{path}", path.encode())
        if b"{len}" in request:
            body = request.partition(b"\r\n\r\n")[2]
            request = request.replace(b"{len}", str(len(body)).encode())
        for pat in case.get("errors", ()):
            self.expect_log(pat)
        self.check(self.shared, request, case.get("status", 200),
                   body=case.get("body"), body_re=case.get("body_re"))

    def temp_files(self):
        return sorted(os.listdir(self.temp_dir()))

    def no_temp_files(self, timeout=3.0):
        """True once the temp dir is empty: files go when the request
        pool is reset, which may come a moment after the client saw the
        response (close, or lingering while draining)."""
        deadline = time.monotonic() + timeout
        while self.temp_files() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.temp_files() == []

    def spool(self, body, chunk=False):
        if chunk:
            req = chunked(*[body[i:i + 7000]
                            for i in range(0, len(body), 7000)])
        else:
            req = post(body)
        req = req.replace(b"{path}", b"/spool")
        req = req.replace(b"{len}", str(len(body)).encode())
        resp, _ = parse_response(self.shared.raw(req))
        return resp

    def test_small_body_stays_in_memory(self):
        body = b"0123456789" * (BODY_BUFFER // 10)
        resp = self.spool(body)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body.split(b"|")[:4],
                         [str(len(body)).encode(), b"nil", b"-1", b"nil"])
        self.assertEqual(self.temp_files(), [])

    def test_big_body_spooled_to_file(self):
        # OpenResty: get_body_data() is nil, get_body_file() the path,
        # get_post_args() nil + "request body in temp file not supported",
        # $request_body_file the path; the file is gone after the request
        for chunk in (False, True):
            with self.subTest(chunked=chunk):
                mark = self.shared.log_mark()
                body = b"0123456789" * 5000
                resp = self.spool(body, chunk)
                self.assertEqual(resp.status, 200, resp)
                data, path, size, err, var, _ = resp.body.decode().split("|")
                self.assertEqual(data, "nil")
                self.assertEqual(os.path.dirname(path), self.temp_dir())
                self.assertRegex(os.path.basename(path), r"^\d{10}$")
                self.assertEqual(int(size), len(body))
                self.assertEqual(err, "request body in temp file not "
                                      "supported")
                self.assertEqual(var, "true")
                self.assertTrue(self.no_temp_files())
                self.assertFalse(os.path.exists(path))
                self.shared.wait_log(r"\[warn\].*a client request body is "
                                     r"buffered to a temporary file", mark)

    def test_spooled_body_over_limit(self):
        # client_max_body_size (1m) applies to a chunked body as it
        # arrives; the file is removed with the request
        body = b"0123456789" * 110000
        resp = self.spool(body, chunk=True)
        self.assertEqual(resp.status, 413)
        self.assertTrue(self.no_temp_files())

    def test_aborted_upload_removes_file(self):
        c = self.shared.conn()
        try:
            c.send(b"POST /spool HTTP/1.1\r\nHost: test\r\n"
                   b"Content-Length: 100000\r\n\r\n" + b"x" * 40000)
            deadline = time.monotonic() + 5
            while not self.temp_files() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(len(self.temp_files()), 1)
        finally:
            c.close()
        self.assertTrue(self.no_temp_files())

    def test_set_body_data_removes_temp_file(self):
        # OpenResty: "hello nil true": the temp file is removed at once
        body = b"0123456789" * 5000
        req = post(body).replace(b"{path}", b"/set_over_file").replace(
            b"{len}", str(len(body)).encode())
        resp, _ = parse_response(self.shared.raw(req))
        self.assertEqual((resp.status, resp.body), (200, b"hello nil true\n"))
        self.assertTrue(self.no_temp_files())

    def test_set_uri_jump(self):
        # OpenResty: the rewrite handler stops, the new location runs,
        # and is_internal() is true there; request_uri is unchanged
        cases = {
            "/jump": b"/target nil true /jump\n",
            "/jumpargs": b"/target a=1 true /jumpargs\n",
            "/nojump": b"stay /target\n",
        }
        for path, body in cases.items():
            with self.subTest(path=path):
                status, _, got = self.shared.request("GET", path)
                self.assertEqual((status, got), (200, body))

    def test_user_variable_in_log_phase(self):
        mark = self.shared.log_mark()
        status, _, body = self.shared.request("GET", "/uservar")
        self.assertEqual((status, body), (200, b"rewrite\n"))
        self.shared.wait_log(r"uservar in log: rewrite", mark)

    def test_keepalive_after_spooled_body(self):
        # the next request on the connection starts clean
        with self.shared.conn() as c:
            body = b"0123456789" * 2000
            c.send(b"POST /spool HTTP/1.1\r\nHost: test\r\nContent-Length: "
                   + str(len(body)).encode() + b"\r\n\r\n" + body)
            first = c.response()
            self.assertEqual(first.body.split(b"|")[0], b"nil")
            c.send(b"POST /spool HTTP/1.1\r\nHost: test\r\nContent-Length: "
                   b"10\r\n\r\n0123456789")
            second = c.response()
            self.assertEqual(second.body.split(b"|")[:3],
                             [b"10", b"nil", b"-1"])
        self.assertTrue(self.no_temp_files())


def _make_test(case, name):
    def test(self):
        self.run_case(case, name)
    return test


for _name, _case in list(CASES.items()) + list(NOT_OPENRESTY.items()):
    setattr(ReqApi, "test_" + _name, _make_test(_case, _name))


if __name__ == "__main__":
    unittest.main()
