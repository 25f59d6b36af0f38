"""
test_req_socket.py: ngx.req.socket() reads the request body as a stream
(receive, receiveany, receiveuntil), answers as OpenResty's does; the
expected bodies are what Debian's nginx + lua-nginx-module printed for the
same Lua and request.
"""

import unittest

from harness import ServerTestCase

STREAM = r'''
local sock, err = ngx.req.socket()
if not sock then ngx.say("err: ", err) return end
local line = sock:receive()
ngx.say("line [", line, "]")
local two = sock:receive(2)
ngx.say("two [", two, "]")
local r = sock:receiveuntil("--B")
while true do
  local d, e, p = r(3)
  if not d then ngx.say("end ", tostring(e), " ", tostring(p)) break end
  ngx.say("chunk [", d, "]")
end
local d, e, p = r()
ngx.say("next ", tostring(d), " ", tostring(e), " [", tostring(p), "]")
local x, e2, p2 = sock:receive(5)
ngx.say("after ", tostring(x), " ", tostring(e2), " [", tostring(p2), "]")
local y, e3 = sock:receiveany(10)
ngx.say("any ", tostring(y), " ", tostring(e3))
'''

SUM = r'''
local sock = assert(ngx.req.socket())
local total, n = 0, 0
while true do
  local data, err, partial = sock:receive(1000)
  if not data then
    total = total + #partial
    break
  end
  total = total + #data
  n = n + 1
end
ngx.say(total, " ", n)
'''

CONFIG = {
    "http": {"client_body_buffer_size": "16k",
             "client_max_body_size": "1m"},
    "servers": [{
        "listen": ["127.0.0.1:{port}"],
        "locations": [
            {"match": "= /stream", "content": STREAM},
            {"match": "= /read_first", "content":
                'ngx.req.read_body()\n'
                'local sock, err = ngx.req.socket()\n'
                'ngx.say(tostring(sock), " ", tostring(err))'},
            {"match": "= /raw", "content":
                'local sock, err = ngx.req.socket(true)\n'
                'ngx.say(tostring(sock), " ", tostring(err))'},
            {"match": "= /sum", "content": SUM},
        ],
    }],
}


class ReqSocket(ServerTestCase):
    CONFIG = CONFIG

    def test_receive_receiveuntil_receiveany(self):
        # OpenResty printed exactly this for the same body
        resp = self.shared.request("POST", "/stream",
                                   body=b"hello\r\nXYabcdefg--Btail--Bz")
        self.assertEqual(resp.body, b"line [hello]\ntwo [XY]\nchunk [abc]\n"
                         b"chunk [def]\nchunk [g]\nend nil nil\n"
                         b"next tail nil [nil]\nafter nil closed [z]\n"
                         b"any nil closed\n")

    def test_body_already_read(self):
        # OpenResty: nil, "request body already exists"
        resp = self.shared.request("POST", "/read_first", body=b"abc")
        self.assertEqual(resp.body, b"nil request body already exists\n")

    def test_raw_mode_is_absent(self):
        resp = self.shared.request("GET", "/raw")
        self.assertEqual(resp.body, b"nil raw request socket not supported\n")

    def test_body_spooled_to_a_file_streams_too(self):
        body = b"x" * 100500  # past client_body_buffer_size: a temp file
        resp = self.shared.request("POST", "/sum", body=body)
        self.assertEqual(resp.body, b"100500 100\n")


if __name__ == "__main__":
    unittest.main()
