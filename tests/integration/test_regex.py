"""
ngx.re.match/find/gmatch/sub/gsub and require("ngx.re").split, as
OpenResty answers them.

Every case ran first on Debian's nginx 1.22.1 + libnginx-mod-http-lua +
lua-resty-core as a content_by_lua_block, with the same PRELUDE; "expect"
is what it printed. P() prints its arguments serialized (tables with sorted
keys, strings %q-quoted); E() prints what a call raised ("RAISE: ...").

Where moonpool differs on purpose, the case says so under "OpenResty:":
  - Debian's lua-nginx-module is built on PCRE1, so its compile errors read
    `pcre_compile() failed: missing ) in "("`; moonpool is on PCRE2 and
    answers like lua-nginx-module's PCRE2 build: `pcre2_compile() failed:
    <PCRE2's message> in "<regex>"[ at "<rest>"]`, and "pcre_exec()
    failed: N" carries PCRE2's error number.
  - An error raised by resty.core's Lua code carries its file:line
    prefix; moonpool's C functions raise the same message without it.
  - After an empty match with "u", OpenResty steps one byte and fails
    with "pcre_exec() failed: -11" (bad UTF-8 offset); moonpool steps
    one character.

Cases are data: one location "= /t/<name>" per case on one shared server,
one generated test method per case.
"""

import unittest

from harness import ServerTestCase

LUA_PATH = "/usr/share/lua/5.1/?.lua;;"

PRELUDE = r'''
local function ser(v)
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      return type(a) .. tostring(a) < type(b) .. tostring(b)
    end)
    local out = {}
    for _, k in ipairs(keys) do
      out[#out + 1] = tostring(k) .. "=" .. ser(v[k])
    end
    return "{" .. table.concat(out, ",") .. "}"
  elseif type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end
local function P(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = ser((select(i, ...))) end
  ngx.say(table.concat(t, " "))
end
local function E(f, ...)
  local ok, err = pcall(f, ...)
  if ok then ngx.say("no error") else ngx.say("RAISE: ", err) end
end
'''

# name: (lua, expected output lines)
CASES = {
    # ---- ngx.re.match
    "match_groups": (
        r'P(ngx.re.match("hello world", "(\\w+) (\\w+)"))',
        ['{0="hello world",1="hello",2="world"}']),
    "match_named_and_optional": (
        # Unmatched optional groups are false, named ones set by name too.
        r'P(ngx.re.match("hello", "(?<a>h)(x)?(?<b>e)")) '
        r'P(ngx.re.match("hello", "(?<z>h)(?<a>e)(l)"))',
        ['{0="he",1="h",2=false,3="e",a="h",b="e"}',
         '{0="hel",1="h",2="e",3="l",a="e",z="h"}']),
    "match_no_match": (
        r'P(ngx.re.match("hello", "z"))',
        ['nil']),
    "match_dupnames": (
        # With "D" each name holds an array of the groups that matched.
        r'P(ngx.re.match("ab", "(?<n>a)|(?<n>b)", "D")) '
        r'P(ngx.re.match("b", "(?<n>a)|(?<n>b)", "D")) '
        r'P(ngx.re.match("ab", "(?<n>a)(?<m>b)?", "D"))',
        ['{0="a",1="a",2=false,n={1="a"}}',
         '{0="b",1=false,2="b",n={1="b"}}',
         '{0="ab",1="a",2="b",m={1="b"},n={1="a"}}']),
    "match_ctx_pos": (
        r'local ctx = {pos = 2} P(ngx.re.match("hello", "l", "", ctx), ctx) '
        r'ctx = {} P(ngx.re.match("hello", "l", "", ctx), ctx) '
        r'ctx = {pos = 0} P(ngx.re.match("hello", "h", "", ctx), ctx) '
        r'ctx = {pos = 6} P(ngx.re.match("hello", "$", "", ctx), ctx) '
        r'ctx = {} P(ngx.re.match("hello", "", "", ctx), ctx) '
        r'P(ngx.re.match("hello", "h", "", {pos = -1})) '
        r'P(ngx.re.match("hello", "e", "", {pos = 2.7}))',
        ['{0="l"} {pos=4}', '{0="l"} {pos=4}', '{0="h"} {pos=2}',
         '{0=""} {pos=6}', '{0=""} {pos=1}', '{0="h"}', '{0="e"}']),
    "match_pos_past_end": (
        # OpenResty (PCRE1): nil "pcre_exec() failed: -24"; PCRE2's
        # PCRE2_ERROR_BADOFFSET is -33.
        r'P(ngx.re.match("hello", "l", "", {pos = 10})) '
        r'P(ngx.re.find("hello", "l", "", {pos = 10}))',
        ['nil "pcre_exec() failed: -33"',
         'nil nil "pcre_exec() failed: -33"']),
    "match_res_table": (
        # The res table is filled in place; other entries stay.
        r'local res = {"x", "y", "z", foo = 1} '
        r'local m = ngx.re.match("hello", "(h)(e)", "", nil, res) '
        r'P(m == res, m) '
        r'P(ngx.re.match("hello", "l", "", nil, {[0] = "x", [1] = "y"}))',
        ['true {0="he",1="h",2="e",3="z",foo=1}', '{0="l",1="y"}']),
    "match_options": (
        r'P(ngx.re.match("ABC", "b", "i")) '
        r'P(ngx.re.match("a\nb", "^b", "m")) '
        r'P(ngx.re.match("a\nb", "a.b", "s")) '
        r'P(ngx.re.match("a b", "a\\ b # c", "x")) '
        r'P(ngx.re.match("xA", "A", "a")) '
        r'P(ngx.re.match("xAA", "A", "a", {pos = 2})) '
        r'P(ngx.re.match("\230\151\165\230\156\172", ".", "u")) '
        r'P(ngx.re.match("\230\151\165\230\156\172", ".", "U")) '
        r'P(ngx.re.match("\255", ".", "U")) '
        r'P(ngx.re.match("foo=bar", "(?<k>\\w+)=(?<v>\\w+)", "jo"))',
        ['{0="B"}', '{0="b"}', '{0="a\\\nb"}', '{0="a b"}', 'nil',
         '{0="A"}', '{0="\u65e5"}', '{0="\u65e5"}', '{0="\xff"}',
         '{0="foo=bar",1="foo",2="bar",k="foo",v="bar"}']),
    "match_javascript_compat": (
        # "J": \uHHHH escapes, [] matches nothing.
        r'P(ngx.re.match("hello", "h", "J")) '
        r'P(ngx.re.match("A", "\\u0041", "J")) '
        r'P(ngx.re.match("A", "[]A", "J"))',
        ['{0="h"}', '{0="A"}', 'nil']),
    "match_dfa": (
        # "d": the longest match, no groups.
        r'P(ngx.re.match("hello", "l+|he", "d")) '
        r'P(ngx.re.match("hello", "(h)(e)", "d")) '
        r'P(ngx.re.match("ab", "(?<n>a)|(?<n>b)", "Dd")) '
        r'P(ngx.re.match("hello", "(?<n>l)", "d")) '
        r'for m in ngx.re.gmatch("hello, halo", "h[a-z]|h[a-z][a-z]", '
        r' "d") do P(m) end '
        r'P(ngx.re.find("hello", "(l)(l)", "d", nil, 1))',
        ['{0="he"}', '{0="he"}', '{0="a"}', '{0="l"}', '{0="hel"}',
         '{0="hal"}', 'nil nil "nth out of bound"']),
    "match_many_groups": (
        r'local t = {} for i = 1, 40 do t[i] = "(a)" end '
        r'P(#ngx.re.match(string.rep("a", 40), table.concat(t)))',
        ['40']),
    "bad_option": (
        # OpenResty: "/usr/share/lua/5.1/resty/core/regex.lua:624: unknown
        # flag ..." (the prefix is resty.core's own line).
        r'E(ngx.re.match, "hello", "h", "z") '
        r'E(ngx.re.match, "hello", "h", "iz") '
        r'E(ngx.re.gsub, "hello", "l", "x", "jq")',
        ['RAISE: unknown flag "z" (flags "z")',
         'RAISE: unknown flag "z" (flags "iz")',
         'RAISE: unknown flag "q" (flags "jq")']),
    "bad_regex": (
        # OpenResty (PCRE1): nil "pcre_compile() failed: missing ) in
        # \"(\""; with "at" when PCRE stops before the end.
        r'P(ngx.re.match("hello", "(")) '
        r'P(ngx.re.find("hello", "(")) '
        r'P(ngx.re.gmatch("hello", "(")) '
        r'P(ngx.re.sub("hello", "(", "x")) '
        r'P(ngx.re.gsub("hello", "(", "x")) '
        r'P(ngx.re.match("ab", "(?<n>a)|(?<n>b)"))',
        ['nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""',
         'nil nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""',
         'nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""',
         'nil nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""',
         'nil nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""',
         'nil "pcre2_compile() failed: two named subpatterns have the same '
         'name (PCRE2_DUPNAMES not set) in \\"(?<n>a)|(?<n>b)\\" at '
         '\\"b)\\""']),
    "bad_utf8": (
        # OpenResty (PCRE1): "pcre_exec() failed: -10"; PCRE2 reports
        # the kind of UTF-8 error (-23: illegal byte 0xff).
        r'P(ngx.re.match("\255", ".", "u"))',
        ['nil "pcre_exec() failed: -23"']),
    "subject_tostring": (
        r'P(ngx.re.gsub(123, "2", "x")) '
        r'P(ngx.re.match(nil, "ni")) '
        r'P(ngx.re.find(true, "ue"))',
        ['"1x3" 1', '{0="ni"}', '3 4']),

    # ---- ngx.re.find
    "find": (
        r'P(ngx.re.find("hello world", "o (w)")) '
        r'P(ngx.re.find("hello world", "o (w)", "", nil, 1)) '
        r'P(ngx.re.find("hello world", "o (w)", "", nil, 2)) '
        r'P(ngx.re.find("hello world", "o (w)?x?", "", nil, 1)) '
        r'P(ngx.re.find("hello world", "(x)?o", "", nil, 1)) '
        r'P(ngx.re.find("hello world", "(x)|o", "", nil, 1)) '
        r'P(ngx.re.find("hello world", "z")) '
        r'P(ngx.re.find("hello", "")) '
        r'P(ngx.re.find("hello", "l+", "", nil, -1))',
        ['5 7', '7 7', 'nil nil "nth out of bound"', '7 7', 'nil nil',
         'nil nil', 'nil', '1 0', '3 4']),
    "find_ctx": (
        r'local ctx = {pos = 3} P(ngx.re.find("hello", "l+", "", ctx), ctx) '
        r'ctx = {pos = 1} P(ngx.re.find("hello", "x", "", ctx), ctx)',
        ['3 {pos=5}', 'nil {pos=1}']),

    # ---- ngx.re.gmatch
    "gmatch": (
        r'local it = ngx.re.gmatch("a1b2c3", "([a-z])(\\d)") '
        r'for i = 1, 5 do P(it()) end '
        r'for m in ngx.re.gmatch("k1=v1, k2=v2", "(?<k>\\w+)=(?<v>\\w+)", '
        r' "jo") do P(m) end',
        ['{0="a1",1="a",2="1"}', '{0="b2",1="b",2="2"}',
         '{0="c3",1="c",2="3"}', 'nil', 'nil',
         '{0="k1=v1",1="k1",2="v1",k="k1",v="v1"}',
         '{0="k2=v2",1="k2",2="v2",k="k2",v="v2"}']),
    "gmatch_empty_matches": (
        r'local it = ngx.re.gmatch("abc", "x*") '
        r'for i = 1, 6 do P(it()) end',
        ['{0=""}', '{0=""}', '{0=""}', '{0=""}', 'nil', 'nil']),
    "gmatch_empty_utf8": (
        # OpenResty: {0=""} then nil "pcre_exec() failed: -11" (it steps
        # into the middle of a character).
        r'local it = ngx.re.gmatch("\230\151\165\230\156\172", "", "u") '
        r'for i = 1, 4 do P(it()) end',
        ['{0=""}', '{0=""}', '{0=""}', 'nil']),

    # ---- ngx.re.sub / gsub
    "sub_gsub_templates": (
        r'P(ngx.re.sub("hello world", "(o)", "[$1]")) '
        r'P(ngx.re.gsub("hello world", "(o)", "[$1]")) '
        r'P(ngx.re.gsub("hello world", "(o)", "$2")) '
        r'P(ngx.re.gsub("hello world", "(o)(x)?", "<$2>")) '
        r'P(ngx.re.gsub("hello world", "z", "x")) '
        r'P(ngx.re.gsub("hello", "l", 5)) '
        r'P(ngx.re.gsub("hello", "l")) '
        r'P(ngx.re.gsub("a-b-c", "-", "", "jo"))',
        ['"hell[o] world" 1', '"hell[o] w[o]rld" 2', '"hell wrld" 2',
         '"hell<> w<>rld" 2', '"hello world" 0', '"he55o" 2',
         '"henilnilo" 2', '"abc" 2']),
    "template_syntax": (
        # Only $N, ${N} and $$ are accepted; names are not.
        r'for _, t in ipairs{"$1a", "${1}a", "$$", "$$1", "$0", "${0}", '
        r' "${}", "$ ", "${1 }", "${01}", "$001x", "${1}}", "{$1}", "$1$", '
        r' "x$", "${a}", "$a", "${", "", "\\$1", "$-1", "$12", "${10}"} do '
        r' P(t, ngx.re.sub("abc", "(b)", t)) end '
        r'P(ngx.re.sub("abc", "z", "$"))',
        ['"$1a" "abac" 1', '"${1}a" "abac" 1', '"$$" "a$c" 1',
         '"$$1" "a$1c" 1', '"$0" "abc" 1', '"${0}" "abc" 1',
         '"${}" nil nil "failed to compile the replacement template"',
         '"$ " nil nil "failed to compile the replacement template"',
         '"${1 }" nil nil "failed to compile the replacement template"',
         '"${01}" "abc" 1', '"$001x" "abxc" 1', '"${1}}" "ab}c" 1',
         '"{$1}" "a{b}c" 1',
         '"$1$" nil nil "failed to compile the replacement template"',
         '"x$" nil nil "failed to compile the replacement template"',
         '"${a}" nil nil "failed to compile the replacement template"',
         '"$a" nil nil "failed to compile the replacement template"',
         '"${" nil nil "failed to compile the replacement template"',
         '"" "ac" 1', '"\\\\$1" "a\\\\bc" 1',
         '"$-1" nil nil "failed to compile the replacement template"',
         '"$12" "ac" 1', '"${10}" "ac" 1',
         'nil nil "failed to compile the replacement template"']),
    "gsub_function": (
        r'P(ngx.re.gsub("hello world", "o", function(m) '
        r' return "<" .. m[0] .. ">" end)) '
        r'P(ngx.re.gsub("hello world", "o", function(m) return 1 end)) '
        r'P(ngx.re.gsub("hello world", "o", function(m) return nil end)) '
        r'P(ngx.re.gsub("hello", "l", function(m) '
        r' return m[0]:upper() end, "jo")) '
        r'P(ngx.re.sub("hello", "(?<x>l)", function(m) '
        r' return m.x .. "!" end)) '
        r'P(ngx.re.gsub("a.b.c", "\\.", function(m) '
        r' return ngx.re.gsub(m[0], ".", "!") end))',
        ['"hell<o> w<o>rld" 2', '"hell1 w1rld" 2',
         '"hellnil wnilrld" 2', '"heLLo" 2', '"hel!lo" 1', '"a!b!c" 2']),
    "gsub_empty_matches": (
        r'P(ngx.re.gsub("abc", "x*", "-")) '
        r'P(ngx.re.gsub("\230\151\165", "", "-"))',
        ['"-a-b-c-" 4', '"-\xe6-\x97-\xa5-" 4']),
    "gsub_empty_utf8": (
        # OpenResty: nil nil "pcre_exec() failed: -11".
        r'P(ngx.re.gsub("\230\151\165\230\156\172", "", "-", "u"))',
        ['"-\u65e5-\u672c-" 3']),

    # ---- "o" caches per pattern and options
    "compile_once_flags": (
        r'P(ngx.re.gsub("abcb", "(b)", "[$1]", "o"), '
        r' ngx.re.gsub("aBcb", "(b)", "<$1>", "io"), '
        r' ngx.re.gsub("abcb", "(b)", "[$1]", "o")) '
        r'P(ngx.re.match("abc", "B", "o"), ngx.re.match("abc", "B", "io"), '
        r' ngx.re.match("abc", "B", "oi")) '
        r'P(ngx.re.match("abc", "B", "o"), ngx.re.match("abc", "B", ""), '
        r' ngx.re.match("abc", "B", "i"))',
        ['"a[b]c[b]" "a<B>c<b>" "a[b]c[b]" 2', 'nil {0="b"} {0="b"}',
         'nil nil {0="b"}']),
    "cache_churn": (
        # 3000 distinct patterns empty the cache of calls without "o"
        # while a gsub still uses a regex compiled before.
        r'local n = 0 '
        r'P(ngx.re.gsub("a-b", "-", function(m) '
        r' for i = 1, 3000 do '
        r' if ngx.re.find("x" .. i, "x" .. i .. "$") then n = n + 1 end '
        r' end return "+" end)) '
        r'P(n, ngx.re.match("x17", "x\\d+")[0])',
        ['"a+b" 1', '3000 "x17"']),

    # ---- ngx.re.split (lua-resty-core's ngx.re module)
    "split": (
        r'local re = require "ngx.re" '
        r'P(re.split("a,b,,c,,", ",")) '
        r'P(re.split("a,b,,c,,", ",", nil, nil, 2)) '
        r'P(re.split("a,b,,c,,", ",", nil, nil, 10)) '
        r'P(re.split("a1b22c", "(\\d+)")) '
        r'P(re.split("abc", "")) '
        r'P(re.split("abc", "", nil, nil, 2)) '
        r'P(re.split("", ",")) '
        r'P(re.split("", "(")) '
        r'P(re.split(",a,b", ",")) '
        r'P(re.split("a2b", "(x)?(\\d)")) '
        r'P(re.split("a, b ,c", "\\s*,\\s*", "jo")) '
        r'P(re.split("abc", "x*")) '
        r'P(re.split("aXbX", "X", nil, nil, -1)) '
        r'P(re.split(",,,", ",")) '
        r'P(re.split(",,,", ",", nil, nil, 2)) '
        r'P(re.split("a,,b", "(,)")) '
        r'P(re.split("abc", "b|"))',
        ['{1="a",2="b",3="",4="c"}', '{1="a",2="b,,c,,"}',
         '{1="a",2="b",3="",4="c",5="",6=""}',
         '{1="a",2="1",3="b",4="22",5="c"}', '{1="a",2="b",3="c"}',
         '{1="a",2="bc"}', '{}', '{}', '{1="",2="a",3="b"}',
         '{1="a",2="a2b",3="b"}', '{1="a",2="b",3="c"}',
         '{1="a",2="b",3="c"}', '{1="a",2="b"}', '{}', '{1="",2=",,"}',
         '{1="a",2=",",3="",4=",",5="b"}', '{1="a",2="ab",3="c"}']),
    "split_ctx_res": (
        r'local re = require "ngx.re" '
        r'local ctx = {pos = 3} P(re.split("a,b,c", ",", nil, ctx), ctx) '
        r'ctx = {} P(re.split("a,b,c", ",", nil, ctx), ctx) '
        r'local res = {"q", "w", "e", "r", "t"} '
        r'P(re.split("a,b", ",", nil, nil, nil, res) == res, res) '
        r'E(re.split, "a,b", ",", nil, nil, nil, 5) '
        r'P(re.split("a,b", "("))',
        ['{1="b",2="c"} {pos=4}', '{1="a",2="b",3="c"} {pos=4}',
         'true {1="a",2="b",4="r",5="t"}', 'RAISE: res is not a table',
         'nil "pcre2_compile() failed: missing closing parenthesis in '
         '\\"(\\""']),
    "split_utf8_empty": (
        # OpenResty: nil "pcre_exec() failed: -11".
        r'P(require("ngx.re").split("\230\151\165\230\156\172", "", "u"))',
        ['{1="\u65e5",2="\u672c"}']),
}


def case_locations():
    return [{"match": "= /t/" + name, "content": PRELUDE + lua}
            for name, (lua, _) in CASES.items()]


CONFIG = {
    "cluster": {"workers": 1},
    "lua": {"package_path": LUA_PATH},
    "servers": [{"locations": case_locations()}],
}


class Regex(ServerTestCase):
    CONFIG = CONFIG

    def run_case(self, name):
        _, expect = CASES[name]
        body = "".join(line + "\n" for line in expect)
        self.check(self.shared, {"path": "/t/" + name}, 200,
                   body=_encode(body))


def _encode(text):
    """Expected bodies are written as text; \\xff stands for byte 0xff."""
    out = bytearray()
    for ch in text:
        if 0x80 <= ord(ch) <= 0xff:
            out.append(ord(ch))
        else:
            out.extend(ch.encode("utf-8"))
    return bytes(out)


def _make_test(name):
    def test(self):
        self.run_case(name)
    test.__name__ = "test_" + name
    return test


for _name in CASES:
    setattr(Regex, "test_" + _name, _make_test(_name))


if __name__ == "__main__":
    unittest.main()
