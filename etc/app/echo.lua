-- /echo: the request as the handler sees it.
ngx.say(ngx.req.get_method(), " ", ngx.var.request_uri, " HTTP/",
        ngx.req.http_version())
local headers = ngx.req.get_headers()
local names = {}
for name in pairs(headers) do
    names[#names + 1] = name
end
table.sort(names)
for _, name in ipairs(names) do
    local v = headers[name]
    if type(v) == "table" then
        v = table.concat(v, ", ")
    end
    ngx.say(name, ": ", v)
end
local args = ngx.req.get_uri_args()
for k, v in pairs(args) do
    ngx.say("arg ", k, " = ", type(v) == "table" and table.concat(v, ",") or tostring(v))
end
ngx.say("client ", ngx.var.remote_addr, ":", ngx.var.remote_port)
