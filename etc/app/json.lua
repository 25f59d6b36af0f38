-- /json?name=NAME: a small JSON API with lua-cjson (loaded in lua.init).
local args = ngx.req.get_uri_args()
ngx.header.content_type = "application/json"
ngx.say(cjson.encode({
    hello = args.name or "world",
    worker = ngx.worker.id(),
    time = ngx.now(),
    uptime = os.time() - started,
}))
