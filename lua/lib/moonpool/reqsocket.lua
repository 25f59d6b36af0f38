-- moonpool.reqsocket: ngx.req.socket() -- the request body as a read-only
-- cosocket, with OpenResty's receive, receiveany and receiveuntil.
--
-- moonpool reads a request body whole before the first handler runs (in
-- memory, or spooled to a temp file past client_body_buffer_size), so the
-- socket reads from that copy instead of the connection: the results and
-- error strings are a cosocket's, but nothing here ever waits. Raw mode
-- (ngx.req.socket(true)) is not supported.

local ngx = ngx
local type = type
local tonumber = tonumber
local setmetatable = setmetatable
local str_find = string.find
local str_sub = string.sub
local io_open = io.open

local sock = {}
local mt = { __index = sock }


local function body_of()
    local data = ngx.req.get_body_data()
    if data then
        return data
    end
    local path = ngx.req.get_body_file()
    if not path then
        return ""
    end
    local f, err = io_open(path, "rb")
    if not f then
        return nil, err
    end
    data = f:read("*a")
    f:close()
    return data
end


function sock.settimeout(self, ms)
    -- no wait can happen: the body is already here
    self.timeout = ms
end


function sock.settimeouts(self)
end


-- The rest of the body from self.pos, consumed.
local function rest(self)
    local data = str_sub(self.buf, self.pos)
    self.pos = #self.buf + 1
    return data
end


function sock.receive(self, pattern)
    local buf, pos = self.buf, self.pos
    if pattern == nil then
        pattern = "*l"
    end
    if type(pattern) == "number" or tonumber(pattern) then
        local n = tonumber(pattern)
        if n < 0 then
            error("bad argument #2 to 'receive' (bad pattern argument)", 2)
        end
        if pos + n - 1 > #buf then
            return nil, "closed", rest(self)
        end
        self.pos = pos + n
        return str_sub(buf, pos, pos + n - 1)
    end
    if pattern == "*a" or pattern == "a" then
        return rest(self)
    end
    if pattern == "*l" or pattern == "l" then
        local nl = str_find(buf, "\n", pos, true)
        if not nl then
            return nil, "closed", rest(self)
        end
        self.pos = nl + 1
        local last = nl - 1
        if last >= pos and str_sub(buf, last, last) == "\r" then
            last = last - 1
        end
        return str_sub(buf, pos, last)
    end
    error("bad argument #2 to 'receive' (bad pattern argument)", 2)
end


function sock.receiveany(self, max)
    max = tonumber(max)
    if not max or max <= 0 then
        error("bad argument #2 to 'receiveany' (bad max argument)", 2)
    end
    if self.pos > #self.buf then
        return nil, "closed"
    end
    local data = str_sub(self.buf, self.pos, self.pos + max - 1)
    self.pos = self.pos + #data
    return data
end


function sock.receiveuntil(self, pattern, opts)
    if type(pattern) ~= "string" or pattern == "" then
        error("bad argument #2 to 'receiveuntil' (pattern is empty)", 2)
    end
    local inclusive = type(opts) == "table" and opts.inclusive
    local plen = #pattern
    local done = false

    -- Each call returns the data before the pattern; with a size, at most
    -- that many bytes a call, then nil (no error) once the pattern is
    -- consumed, as OpenResty's iterator does.
    return function(size)
        local buf, pos = self.buf, self.pos
        local at = str_find(buf, pattern, pos, true)
        if done then
            done = false
            return nil
        end
        if not at then
            return nil, "closed", rest(self)
        end
        if size then
            size = tonumber(size)
            local avail = at - pos
            if avail > size then
                self.pos = pos + size
                return str_sub(buf, pos, pos + size - 1)
            end
            self.pos = at + plen
            done = true
            if inclusive then
                return str_sub(buf, pos, at + plen - 1)
            end
            return str_sub(buf, pos, at - 1)
        end
        self.pos = at + plen
        if inclusive then
            return str_sub(buf, pos, at + plen - 1)
        end
        return str_sub(buf, pos, at - 1)
    end
end


function sock.close()
    return nil, "not supported"
end


function sock.send()
    return nil, "not supported"
end


local function req_socket(raw)
    if raw then
        return nil, "raw request socket not supported"
    end
    if ngx.req.get_body_data() ~= nil or ngx.req.get_body_file() ~= nil then
        -- ngx.req.read_body() took it already (OpenResty's answer)
        return nil, "request body already exists"
    end
    ngx.req.read_body()
    local buf, err = body_of()
    if not buf then
        return nil, err
    end
    return setmetatable({ buf = buf, pos = 1 }, mt)
end


ngx.req.socket = req_socket

return { socket = req_socket }
