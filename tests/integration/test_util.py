"""
test_util.py: ngx's string utilities and ngx.config (issue 4,
"Utilities"): escape_uri, unescape_uri, encode_args, decode_args,
encode_base64, decode_base64, the ngx.base64 module, md5, md5_bin,
sha1_bin, hmac_sha1, crc32_short, crc32_long, quote_sql_str, ngx.config
and ngx.worker.exiting.

Every expected body below is what Debian 12's nginx 1.22.1 +
libnginx-mod-http-lua 0.10.23 + lua-resty-core 0.1.25 printed for the same
Lua (PRELUDE + the case) run as content_by_lua_block: each one is an
"OpenResty:" answer. Error messages are compared without their
"chunk:line:" prefix, since chunk names differ between the two servers;
p(f, ...) prints pcall's results, tables with sorted keys, strings %q.

Cases are data: one location "= /t/<name>" per case on one shared server,
one generated test method per case.
"""

import os
import unittest

from harness import ServerTestCase

RESTY_CORE = "/usr/share/lua/5.1/resty/core/base.lua"

PRELUDE = r'''local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
local function ser(v)
    if type(v) == "table" then
        local keys, out = {}, {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. ser(v[k]) end
        return "{" .. table.concat(out, ",") .. "}"
    end
    return type(v) == "string" and string.format("%q", v) or tostring(v)
end
local function p(f, ...)
    local r = {pcall(f, ...)}
    local n = select("#", pcall(f, ...))
    if not r[1] then r[2] = tostring(r[2]):gsub("^.-:%d+: ", "") end
    for i = 1, n do r[i] = ser(r[i]) end
    ngx.say(table.concat(r, " ", 1, n))
end
'''

# (name, Lua, body OpenResty printed)
CASES = [
    # the default type is 2: only A-Z a-z 0-9 - . _ ~ ! * ' ( ) stay
    ('escape_uri_component', r'''ngx.say(ngx.escape_uri("a b/c?d=e&f#g+h%i~!*'()[]{}|\\^`\"<>,;:@$"))''',
     b"".join([
        b"a%20b%2Fc%3Fd%3De%26f%23g%2Bh%25i~!*'()%5B%5D%7B%7D%7C%5C%5E%60%22%3C%3E%2C%3B%3A%40%24\n",
     ])),
    # UTF-8 is escaped byte by byte, in upper-case hex
    ('escape_uri_unicode', r'''ngx.say(ngx.escape_uri("你好 é"))
ngx.say(ngx.escape_uri("\0\1\127\128\255"))''',
     b"".join([
        b'%E4%BD%A0%E5%A5%BD%20%C3%A9\n',
        b'%00%01%7F%80%FF\n',
     ])),
    # every byte with the default type
    ('escape_uri_all_bytes', r'''local t = {}
for c = 0, 255 do t[#t + 1] = string.char(c) end
ngx.say(ngx.escape_uri(table.concat(t)))''',
     b"".join([
        b"%00%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14%15%16%17%18%19%1A%1B%1C%1D%1E%1F%20!%22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~%7F%80%81%82%83%84%85%86%87%88%89%8A%8B%8C%8D%8E%8F%90%91%92%93%94%95%96%97%98%99%9A%9B%9C%9D%9E%9F%A0%A1%A2%A3%A4%A5%A6%A7%A8%A9%AA%AB%AC%AD%AE%AF%B0%B1%B2%B3%B4%B5%B6%B7%B8%B9%BA%BB%BC%BD%BE%BF%C0%C1%C2%C3%C4%C5%C6%C7%C8%C9%CA%CB%CC%CD%CE%CF%D0%D1%D2%D3%D4%D5%D6%D7%D8%D9%DA%DB%DC%DD%DE%DF%E0%E1%E2%E3%E4%E5%E6%E7%E8%E9%EA%EB%EC%ED%EE%EF%F0%F1%F2%F3%F4%F5%F6%F7%F8%F9%FA%FB%FC%FD%FE%FF\n",
     ])),
    # the printable ASCII range under each escape type 0..6
    ('escape_uri_types', r'''local t = {}
for c = 32, 127 do t[#t + 1] = string.char(c) end
local s = table.concat(t)
for typ = 0, 6 do ngx.say(typ, " ", ngx.escape_uri(s, typ)) end
ngx.say(ngx.escape_uri("a b+", 1.5), " ", ngx.escape_uri("a b", nil))''',
     b"".join([
        b'0 %20!"%23$%25&\'()*+,-./0123456789:;<=>%3F@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~%7F\n',
        b'1 %20!"%23$%25&\'()*%2B,-./0123456789:;<=>%3F@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~%7F\n',
        b"2 %20!%22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~%7F\n",
        b'3 %20!%22%23$%25&%27()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~%7F\n',
        b'4 %20!%22#$%&%27()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~%7F\n',
        b'5 %20!"#$%25&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\n',
        b'6 %20!"#$%25&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\n',
        b'a%20b%2B a%20b\n',
     ])),
    # nil, false and no argument give ""; others go through tostring
    ('escape_uri_coercion', r'''ngx.say("[", ngx.escape_uri(nil), "][", ngx.escape_uri(false), "][",
        ngx.escape_uri(), "]")
ngx.say(ngx.escape_uri(true), " ", ngx.escape_uri(12.5), " ",
        ngx.escape_uri(setmetatable({}, {__tostring = function()
            return "a b" end})), " ", ngx.escape_uri(""))''',
     b"".join([
        b'[][][]\n',
        b'true 12.5 a%20b \n',
     ])),
    # bad types raise (positions stripped: chunk names differ)
    ('escape_uri_type_errors', r'''p(ngx.escape_uri, "a b", "2")
p(ngx.escape_uri, "a b", 7)
p(ngx.escape_uri, "a b", -1)
p(ngx.escape_uri, "a b", 6.5)
p(ngx.escape_uri, "a b", false)
p(ngx.escape_uri, "a b", {})''',
     b"".join([
        b'false "\\"type\\" is not a number"\n',
        b'false "\\"type\\" 7 out of range"\n',
        b'false "\\"type\\" -1 out of range"\n',
        b'false "\\"type\\" 6.5 out of range"\n',
        b'false "\\"type\\" is not a number"\n',
        b'false "\\"type\\" is not a number"\n',
     ])),
    # '+' is a space; malformed escapes are kept as they are
    ('unescape_uri', r'''ngx.say(ngx.unescape_uri("a+b%20c%zz%4%41%"))
ngx.say(ngx.unescape_uri("%E4%BD%A0%e5%a5%bd"), " ", ngx.unescape_uri("%%41"),
        " ", ngx.unescape_uri("a%2"), " ", ngx.unescape_uri("%4g%g4"))
ngx.say(hex(ngx.unescape_uri("%00%ff%FF%0a")))
ngx.say("[", ngx.unescape_uri(nil), "][", ngx.unescape_uri(), "][",
        ngx.unescape_uri(12), "][", ngx.unescape_uri(""), "]")''',
     b"".join([
        b'a b c%zz%4A%\n',
        b'\xe4\xbd\xa0\xe5\xa5\xbd %A a%2 %4g%g4\n',
        b'00ffff0a\n',
        b'[][][12][]\n',
     ])),
    # every byte survives escape then unescape, for every type but 5 and 6
    ('unescape_uri_round_trip', r'''local t = {}
for c = 0, 255 do t[#t + 1] = string.char(c) end
local s = table.concat(t)
for typ = 0, 4 do ngx.say(typ, " ", ngx.unescape_uri(ngx.escape_uri(s, typ)) == s) end''',
     b"".join([
        b'0 false\n',
        b'1 true\n',
        b'2 true\n',
        b'3 false\n',
        b'4 false\n',
     ])),
    # strings and numbers are escaped as URI components (space is %20)
    ('encode_args_values', r'''ngx.say(ngx.encode_args({a = 1}))
ngx.say(ngx.encode_args({["a b"] = "c d&=é+"}))
ngx.say(ngx.encode_args({a = 1.5}), " ", ngx.encode_args({a = 1e20}), " ",
        ngx.encode_args({a = -0.0}), " ", ngx.encode_args({a = 1 / 0}), " ",
        ngx.encode_args({a = 2 ^ 53}))
ngx.say("[", ngx.encode_args({a = ""}), "][", ngx.encode_args({[""] = "v"}),
        "][", ngx.encode_args({}), "]")
ngx.say(hex(ngx.encode_args({["\0"] = "\255\n"})))''',
     b"".join([
        b'a=1\n',
        b'a%20b=c%20d%26%3D%C3%A9%2B\n',
        b'a=1.5 a=1e%2B20 a=-0 a=inf a=9.007199254741e%2B15\n',
        b'[a=][=v][]\n',
        b'2530303d254646253041\n',
     ])),
    # true gives the bare key, false is left out
    ('encode_args_booleans', r'''ngx.say("[", ngx.encode_args({a = true}), "][", ngx.encode_args({a = false}),
        "][", ngx.encode_args({a = false, b = 1}), "][",
        ngx.encode_args({[""] = true}), "]")''',
     b"".join([
        b'[a][][b=1][]\n',
     ])),
    # a table value repeats the key for each element, booleans as above
    ('encode_args_arrays', r'''ngx.say(ngx.encode_args({a = {1, 2, 3}}))
ngx.say(ngx.encode_args({a = {true, false, "x y"}}))
ngx.say("[", ngx.encode_args({a = {}}), "][", ngx.encode_args({a = {false}}),
        "][", ngx.encode_args({a = {""}}), "][",
        ngx.encode_args({[""] = {true, true}}), "][",
        ngx.encode_args({a = {nil, 2}}), "]")''',
     b"".join([
        b'a=1&a=2&a=3\n',
        b'a&a=x%20y\n',
        b'[][][a=][&][a=2]\n',
     ])),
    # pairs come in table order, joined with '&' (sorted here)
    ('encode_args_several_keys', r'''local s = ngx.encode_args({b = 2, a = {1, true}, c = "x", d = false})
local parts = {}
for item in s:gmatch("[^&]+") do parts[#parts + 1] = item end
table.sort(parts)
ngx.say(#s, " ", table.concat(parts, " "))''',
     b"".join([
        b'13 a a=1 b=2 c=x\n',
     ])),
    # OpenResty's messages for bad keys, values and arguments
    ('encode_args_errors', r'''p(ngx.encode_args, {a = print})
p(ngx.encode_args, {a = {print}})
p(ngx.encode_args, {a = {{}}})
p(ngx.encode_args, {a = ngx.null})
p(ngx.encode_args, {"x"})
p(ngx.encode_args, {[true] = "x"})
p(ngx.encode_args, "a=1")
p(ngx.encode_args, nil)
p(ngx.encode_args)
p(ngx.encode_args, {}, {})''',
     b"".join([
        b'false "attempt to use function as query arg value"\n',
        b'false "attempt to use function as query arg value"\n',
        b'false "attempt to use table as query arg value"\n',
        b'false "attempt to use userdata as query arg value"\n',
        b'false "attempt to use a non-string key in the \\"args\\" option table"\n',
        b'false "attempt to use a non-string key in the \\"args\\" option table"\n',
        b'false "bad argument #1 to \'?\' (table expected, got string)"\n',
        b'false "bad argument #1 to \'?\' (table expected, got nil)"\n',
        b'false "expecting 1 argument but seen 0"\n',
        b'false "expecting 1 argument but seen 2"\n',
     ])),
    # repeated keys become arrays, a key without '=' is true, empty keys dropped
    ('decode_args', r'''p(ngx.decode_args, "a=1&b=2&a=3&c&d=&=e&&f=%41+x&a")
p(ngx.decode_args, "a=b=c&%3D=%26&k%20y=v%2")
p(ngx.decode_args, "")
p(ngx.decode_args, 12)''',
     b"".join([
        b'true {a={1="1",2="3",3=true},b="2",c=true,d="",f="A x"}\n',
        b'true {=="&",a="b=c",k y="v%2"}\n',
        b'true {}\n',
        b'true {12=true}\n',
     ])),
    # max counts every '&'-ended segment, empty ones included
    ('decode_args_max', r'''p(ngx.decode_args, "a=1&b=2&c=3", 2)
p(ngx.decode_args, "a=1&b=2&c=3", 3)
p(ngx.decode_args, "a=1&b=2&c=3&", 3)
p(ngx.decode_args, "a=1&&&b=2", 2)
p(ngx.decode_args, "=1&a=1", 1)
p(ngx.decode_args, "&&&", 1)
p(ngx.decode_args, "a=1&b=2&c=3", 0)
p(ngx.decode_args, "a=1&b=2&c=3", -1)
p(ngx.decode_args, "a=1&b=2&c=3", "2")
p(ngx.decode_args, "a=1&b=2&c=3", 1.7)''',
     b"".join([
        b'true {a="1",b="2"} "truncated"\n',
        b'true {a="1",b="2",c="3"}\n',
        b'true {a="1",b="2",c="3"} "truncated"\n',
        b'true {a="1"} "truncated"\n',
        b'true {} "truncated"\n',
        b'true {} "truncated"\n',
        b'true {a="1",b="2",c="3"}\n',
        b'true {a="1",b="2",c="3"}\n',
        b'true {a="1",b="2"} "truncated"\n',
        b'true {a="1"} "truncated"\n',
     ])),
    # without max, 100 pairs are kept; 0 and negative mean no limit
    ('decode_args_default_max', r'''local t = {}
for i = 1, 105 do t[#t + 1] = "k" .. i .. "=v" end
local s = table.concat(t, "&")
for _, max in ipairs({false, 0, -1, 105}) do
    local args, err
    if max then args, err = ngx.decode_args(s, max)
    else args, err = ngx.decode_args(s) end
    local n = 0
    for _ in pairs(args) do n = n + 1 end
    ngx.say(tostring(max), " ", n, " ", tostring(err))
end''',
     b"".join([
        b'false 100 truncated\n',
        b'0 105 nil\n',
        b'-1 105 nil\n',
        b'105 105 nil\n',
     ])),
    # argument errors
    ('decode_args_errors', r'''p(ngx.decode_args)
p(ngx.decode_args, "a", 1, 2)
p(ngx.decode_args, nil)
p(ngx.decode_args, {}, "x")
p(ngx.decode_args, "a", nil)
p(ngx.decode_args, "a", "x")''',
     b"".join([
        b'false "expecting 1 or 2 arguments but seen 0"\n',
        b'false "expecting 1 or 2 arguments but seen 3"\n',
        b'false "bad argument #1 to \'?\' (string expected, got nil)"\n',
        b'false "bad argument #1 to \'?\' (string expected, got table)"\n',
        b'false "bad argument #2 to \'?\' (number expected, got nil)"\n',
        b'false "bad argument #2 to \'?\' (number expected, got string)"\n',
     ])),
    # RFC 4648 vectors, with and without padding, and binary input
    ('encode_base64', r'''for _, s in ipairs({"", "f", "fo", "foo", "foob", "fooba", "foobar"}) do
    ngx.say("[", ngx.encode_base64(s), "] [", ngx.encode_base64(s, true), "]")
end
ngx.say(ngx.encode_base64("\255\254\253\0"), " ", ngx.encode_base64("\251\255", true))
ngx.say(ngx.encode_base64("f", false), " ", ngx.encode_base64("f", nil), " [",
        ngx.encode_base64(nil), "] ", ngx.encode_base64(12), " ",
        ngx.encode_base64(true), " [", ngx.encode_base64(), "]")
p(ngx.encode_base64, "f", 1)
p(ngx.encode_base64, "f", "yes")''',
     b"".join([
        b'[] []\n',
        b'[Zg==] [Zg]\n',
        b'[Zm8=] [Zm8]\n',
        b'[Zm9v] [Zm9v]\n',
        b'[Zm9vYg==] [Zm9vYg]\n',
        b'[Zm9vYmE=] [Zm9vYmE]\n',
        b'[Zm9vYmFy] [Zm9vYmFy]\n',
        b'//79AA== +/8\n',
        b'Zg== Zg== [] MTI= dHJ1ZQ== []\n',
        b'false "bad no_padding: boolean expected, got number"\n',
        b'false "bad no_padding: boolean expected, got string"\n',
     ])),
    # nil on invalid input; input ends at the first '='; unused bits ignored
    ('decode_base64', r'''for _, s in ipairs({"Zm9vYmFy", "Zm9vYg==", "Zg==", "Zg=", "Zg", "Zh==", "",
                    "Zg==Zg==", "Zg===", "=", "====", "Zm=v", "+/8=", "//79AA==",
                    "Z", "Z===", "Zm 9v", "Zm9v\n", "-_8", "Zm9v!"}) do
    local r = ngx.decode_base64(s)
    ngx.say(string.format("%q", s), " ", r and hex(r) or "nil")
end
p(ngx.decode_base64, nil)
p(ngx.decode_base64, 12)
p(ngx.decode_base64)''',
     b"".join([
        b'"Zm9vYmFy" 666f6f626172\n',
        b'"Zm9vYg==" 666f6f62\n',
        b'"Zg==" 66\n',
        b'"Zg=" 66\n',
        b'"Zg" 66\n',
        b'"Zh==" 66\n',
        b'"" \n',
        b'"Zg==Zg==" 66\n',
        b'"Zg===" 66\n',
        b'"=" \n',
        b'"====" \n',
        b'"Zm=v" 66\n',
        b'"+/8=" fbff\n',
        b'"//79AA==" fffefd00\n',
        b'"Z" nil\n',
        b'"Z===" nil\n',
        b'"Zm 9v" nil\n',
        b'"Zm9v\\\n',
        b'" nil\n',
        b'"-_8" nil\n',
        b'"Zm9v!" nil\n',
        b'false "string argument only"\n',
        b'false "string argument only"\n',
        b'false "string argument only"\n',
     ])),
    # lua-resty-core's ngx.base64: url alphabet, no padding
    ('base64_module', r'''local b64 = require "ngx.base64"
ngx.say(b64.version)
ngx.say(b64.encode_base64url("\251\255\254"), " ", b64.encode_base64url("f"),
        " [", b64.encode_base64url(""), "]")
p(b64.encode_base64url, 12)
p(b64.encode_base64url, nil)
for _, s in ipairs({"-_-_", "Zg", "Zg==", "Zm9=", "", "Z", "+/8", "Zh"}) do
    p(b64.decode_base64url, s)
end
p(b64.decode_base64url, 12)''',
     b"".join([
        b'0.1.25\n',
        b'-__- Zg []\n',
        b'true nil "must provide a string"\n',
        b'true nil "must provide a string"\n',
        b'true "\xfb\xff\xbf"\n',
        b'true "f"\n',
        b'true "f"\n',
        b'true "fo"\n',
        b'true ""\n',
        b'true nil "invalid input"\n',
        b'true nil "invalid input"\n',
        b'true "f"\n',
        b'true nil "must provide a string"\n',
     ])),
    # RFC 1321 test suite
    ('md5', r'''for _, s in ipairs({"", "a", "abc", "message digest",
                    "abcdefghijklmnopqrstuvwxyz",
                    string.rep("1234567890", 8)}) do
    ngx.say(ngx.md5(s), " ", hex(ngx.md5_bin(s)))
end
ngx.say(ngx.md5(nil), " ", ngx.md5(), " ", ngx.md5(12), " ", ngx.md5(true))
ngx.say(ngx.md5("\0\255"), " ", #ngx.md5_bin("x"))''',
     b"".join([
        b'd41d8cd98f00b204e9800998ecf8427e d41d8cd98f00b204e9800998ecf8427e\n',
        b'0cc175b9c0f1b6a831c399e269772661 0cc175b9c0f1b6a831c399e269772661\n',
        b'900150983cd24fb0d6963f7d28e17f72 900150983cd24fb0d6963f7d28e17f72\n',
        b'f96b697d7cb7938d525a2f31aaf161d0 f96b697d7cb7938d525a2f31aaf161d0\n',
        b'c3fcd3d76192e4007dfb496cca67e13b c3fcd3d76192e4007dfb496cca67e13b\n',
        b'57edf4a22be3c955ac49da2e2107b67a 57edf4a22be3c955ac49da2e2107b67a\n',
        b'd41d8cd98f00b204e9800998ecf8427e d41d8cd98f00b204e9800998ecf8427e c20ad4d76fe97759aa27a0c99bff6710 b326b5062b2f0e69046810717534cb09\n',
        b'd07d34efac6328007ad67c7e0a985e00 16\n',
     ])),
    # FIPS 180 vectors
    ('sha1_bin', r'''for _, s in ipairs({"", "abc",
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        string.rep("a", 1000), "\0\255"}) do
    ngx.say(hex(ngx.sha1_bin(s)))
end
ngx.say(hex(ngx.sha1_bin(nil)), " ", hex(ngx.sha1_bin(12)))''',
     b"".join([
        b'da39a3ee5e6b4b0d3255bfef95601890afd80709\n',
        b'a9993e364706816aba3e25717850c26c9cd0d89d\n',
        b'84983e441c3bd26ebaae4aa1f95129e5e54670f1\n',
        b'291e9a6c66994949b57ba5e650361e98fc36b1ba\n',
        b'aa3e5dcdd77b153f2e59bd0d8794fde33cb4e486\n',
        b'da39a3ee5e6b4b0d3255bfef95601890afd80709 7b52009b64fd0a2a49e6d8a939753077792b0554\n',
     ])),
    # RFC 2202 vectors, an empty key, argument errors
    ('hmac_sha1', r'''ngx.say(hex(ngx.hmac_sha1(string.rep("\11", 20), "Hi There")))
ngx.say(hex(ngx.hmac_sha1("Jefe", "what do ya want for nothing?")))
ngx.say(hex(ngx.hmac_sha1(string.rep("\170", 20), string.rep("\221", 50))))
ngx.say(hex(ngx.hmac_sha1(string.rep("\170", 80),
        "Test Using Larger Than Block-Size Key - Hash Key First")))
ngx.say(hex(ngx.hmac_sha1("", "")), " ", hex(ngx.hmac_sha1(1, 2)))
ngx.say(hex(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")))
p(ngx.hmac_sha1, "k")
p(ngx.hmac_sha1)
p(ngx.hmac_sha1, "k", "s", "x")
p(ngx.hmac_sha1, nil, "s")
p(ngx.hmac_sha1, "k", {})''',
     b"".join([
        b'b617318655057264e28bc0b6fb378c8ef146be00\n',
        b'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79\n',
        b'125d7342b9ac11cd91a39af48aa17b4f63f175d3\n',
        b'aa4ae5e15272d00e95705637ce8a3b55ed402112\n',
        b'fbdb1d1b18aa6c08324b7d64b71fb76370690e1d d075ca12b8259a0b27438f075314a3bb88a927b5\n',
        b'de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9\n',
        b'false "expecting 2 arguments, but got 1"\n',
        b'false "expecting 2 arguments, but got 0"\n',
        b'false "expecting 2 arguments, but got 3"\n',
        b'false "bad argument #1 to \'?\' (string expected, got nil)"\n',
        b'false "bad argument #2 to \'?\' (string expected, got table)"\n',
     ])),
    # zlib's CRC-32, as a number; short and long agree
    ('crc32', r'''for _, s in ipairs({"", "hello", "123456789", "\0", "\255\255\255\255",
                    string.rep("abc", 1000)}) do
    ngx.say(ngx.crc32_short(s), " ", ngx.crc32_long(s))
end
ngx.say(ngx.crc32_short(nil), " ", ngx.crc32_long(), " ", ngx.crc32_short(12),
        " ", type(ngx.crc32_long("x")))''',
     b"".join([
        b'0 0\n',
        b'907060870 907060870\n',
        b'3421780262 3421780262\n',
        b'3523407757 3523407757\n',
        b'4294967295 4294967295\n',
        b'733562123 733562123\n',
        b'0 0 1330857165 number\n',
     ])),
    # MySQL escaping of \0 \b \n \r \t \26 \\ ' "; the rest kept
    ('quote_sql_str', r'''ngx.say(ngx.quote_sql_str("a\0b\nc\rd\te\bf\26g\\h\"i'j%k_l"))
ngx.say(ngx.quote_sql_str(""), " ", ngx.quote_sql_str(12), " ",
        ngx.quote_sql_str("\255\128é"))
local t = {}
for c = 0, 255 do t[#t + 1] = string.char(c) end
ngx.say(hex(ngx.quote_sql_str(table.concat(t))))
p(ngx.quote_sql_str, nil)
p(ngx.quote_sql_str, true)
p(ngx.quote_sql_str)
p(ngx.quote_sql_str, "a", "b")''',
     b"".join([
        b'\'a\\0b\\nc\\rd\\te\\bf\\Zg\\\\h\\"i\\\'j%k_l\'\n',
        b"'' '12' '\xff\x80\xc3\xa9'\n",
        b'275c30010203040506075c625c745c6e0b0c5c720e0f101112131415161718195c5a1b1c1d1e1f20215c22232425265c2728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff27\n',
        b'false "bad argument #1 to \'?\' (string expected, got nil)"\n',
        b'false "bad argument #1 to \'?\' (string expected, got boolean)"\n',
        b'false "expecting one argument"\n',
        b'false "expecting one argument"\n',
     ])),
    # the values of Debian's nginx 1.22.1 + lua-nginx-module 0.10.23
    ('config', r'''local c = ngx.config
ngx.say(c.subsystem, " ", c.nginx_version, " ", c.ngx_lua_version, " ",
        type(c.debug), " ", type(c.prefix), " ", type(c.nginx_configure))
ngx.say(c.prefix():sub(1, 1), c.prefix():sub(-1), " ",
        type(c.nginx_configure()))
ngx.say(tostring(ngx.worker.exiting()))''',
     b"".join([
        b'http 1022001 10023 boolean function function\n',
        b'// string\n',
        b'false\n',
     ])),

]

CONFIG = {
    "lua": {"package_path": "/usr/share/lua/5.1/?.lua;;"},
    "servers": [{"locations": [
        {"match": "= /t/" + name, "content": PRELUDE + lua}
        for name, lua, _ in CASES
    ] + [
        {"match": "= /moonpool_config", "content": """
local c = ngx.config
ngx.say(c.prefix())
ngx.say(tostring(c.debug), " [", c.nginx_configure(), "]")
"""},
        {"match": "= /resty_core_base", "content": """
local base = require "resty.core.base"
ngx.say(base.version)
"""},
    ]}],
}


class Util(ServerTestCase):
    CONFIG = CONFIG

    def run_case(self, name, body):
        resp = self.shared.request("GET", "/t/" + name)
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.body, body)

    def test_config_moonpool_values(self):
        # OpenResty: prefix() is nginx's -p directory with a trailing '/';
        # moonpool has none and gives the config file's directory. Debian's
        # build is --with-debug (debug true) and has configure arguments;
        # moonpool's release build reports false and "".
        resp = self.shared.request("GET", "/moonpool_config")
        self.assertEqual(resp.status, 200, resp.body)
        prefix = os.path.realpath(self.shared.prefix) + "/"
        self.assertEqual(resp.body.decode(), "%s\nfalse []\n" % prefix)

    @unittest.skipUnless(os.path.exists(RESTY_CORE), "no lua-resty-core")
    def test_resty_core_version_check(self):
        # lua-resty-core refuses to load unless ngx.config.ngx_lua_version
        # is exactly 10023 and ngx.config.subsystem is "http".
        resp = self.shared.request("GET", "/resty_core_base")
        self.assertEqual((resp.status, resp.body), (200, b"0.1.25\n"))


def _make_test(name, body):
    def test(self):
        self.run_case(name, body)
    return test


for _name, _lua, _body in CASES:
    setattr(Util, "test_" + _name, _make_test(_name, _body))


if __name__ == "__main__":
    unittest.main()
