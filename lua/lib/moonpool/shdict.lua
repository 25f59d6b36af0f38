-- moonpool.shdict: the FFI half of ngx.shared.DICT (see lua/api_shdict.c).
--
-- vm.c requires this module when it builds a VM and calls install() with
-- the methods table that every dict object's metatable indexes; install()
-- replaces the hot methods with versions that call the mp_ffi_shdict_*
-- functions exported by the moonpool binary. Results and error strings are
-- those of the C methods they replace (lua-resty-core's). Out-parameters
-- and the value buffer are allocated once per VM (so once per worker), so
-- a call allocates nothing but its result.

local ffi = require "ffi"
local buffer = require "string.buffer"

local C = ffi.C
local ffi_cast = ffi.cast
local ffi_new = ffi.new
local ffi_str = ffi.string
local encode = buffer.encode
local error = error
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local type = type

ffi.cdef[[
int mp_ffi_shdict_get(void *zone, const char *key, size_t key_len,
    int get_stale, int *value_type, char *buf, size_t *value_len,
    double *num_value, int *user_flags, int *is_stale, const char **errmsg);
int mp_ffi_shdict_store(void *zone, int op, const char *key, size_t key_len,
    int value_type, const char *str, size_t str_len, double num_value,
    int64_t exptime, int user_flags, int *forcible, const char **errmsg);
int mp_ffi_shdict_incr(void *zone, const char *key, size_t key_len,
    double *value, int has_init, double init, int64_t init_ttl,
    int *forcible, const char **errmsg);
int mp_ffi_shdict_delete(void *zone, const char *key, size_t key_len);
]]

-- core/mp_core.h, shm/dict.h
local MP_OK = 0
local MP_AGAIN = -2
local MP_DECLINED = -5
local TNIL, TBOOLEAN, TNUMBER, TSTRING, TTABLE = 0, 1, 3, 4, 6
local SET, ADD, REPLACE, SAFE = 0x0000, 0x0001, 0x0002, 0x0004

local buf_size = 4096
local buf = ffi_new("char[?]", buf_size)
local value_type = ffi_new("int[1]")
local value_len = ffi_new("size_t[1]")
local num_value = ffi_new("double[1]")
local user_flags = ffi_new("int[1]")
local is_stale = ffi_new("int[1]")
local forcible = ffi_new("int[1]")
local errmsg = ffi_new("const char *[1]")
local decoder = buffer.new()

local _M = {}


-- The zone pointer of each dict object, as a cdata: the JIT cannot pass
-- a lightuserdata to a void * parameter (NYI), so each object's [1] is cast
-- once and the result looked up by the object afterwards.
local zone_ptrs = {}


-- error(..., 3): blame the caller of the method, as lua-resty-core does
-- (check_zone tail-calls this, so level 2 is the method).
local function zone_ptr(zone)
    if type(zone) ~= "table" then
        error('bad "zone" argument', 3)
    end
    local ud = zone[1]
    if type(ud) ~= "userdata" then
        error('bad "zone" argument', 3)
    end
    local ptr = ffi_cast("void *", ud)
    zone_ptrs[zone] = ptr
    return ptr
end


local function check_zone(zone)
    local ptr = zone_ptrs[zone]
    if ptr then
        return ptr
    end
    return zone_ptr(zone)
end


-- Copies the value of key into buf, growing buf while it is too small
-- (the value may grow between two tries, hence the loop).
local function fetch(zone, key, key_len, get_stale)
    value_len[0] = buf_size
    local rc = C.mp_ffi_shdict_get(zone, key, key_len, get_stale, value_type,
                                   buf, value_len, num_value, user_flags,
                                   is_stale, errmsg)
    while rc == MP_AGAIN do
        local need = tonumber(value_len[0])
        local size = buf_size * 2
        if size < need then
            size = need
        end
        buf = ffi_new("char[?]", size)
        buf_size = size
        value_len[0] = size
        rc = C.mp_ffi_shdict_get(zone, key, key_len, get_stale, value_type,
                                 buf, value_len, num_value, user_flags,
                                 is_stale, errmsg)
    end
    return rc
end


local function fetched_value()
    local typ = value_type[0]
    if typ == TSTRING then
        return ffi_str(buf, value_len[0])
    elseif typ == TNUMBER then
        return num_value[0]
    elseif typ == TBOOLEAN then
        return num_value[0] ~= 0
    elseif typ == TTABLE then
        decoder:set(buf, value_len[0])
        local v = decoder:decode()
        decoder:reset()
        return v
    end
    error("unknown value type: " .. typ)
end


-- The key as a string and its length, or nil and OpenResty's error
-- ("nil key", "empty key", "key too long"). Numbers are keys too.
local function key_of(key)
    if key == nil then
        return nil, "nil key"
    end
    if type(key) ~= "string" then
        key = tostring(key)
    end
    local key_len = #key
    if key_len == 0 then
        return nil, "empty key"
    end
    if key_len > 65535 then
        return nil, "key too long"
    end
    return key, key_len
end


local function shdict_get(zone, key)
    zone = check_zone(zone)
    local key_len
    key, key_len = key_of(key)
    if not key then
        return nil, key_len
    end

    local rc = fetch(zone, key, key_len, 0)
    if rc ~= MP_OK then
        if rc == MP_DECLINED then
            return nil
        end
        return nil, ffi_str(errmsg[0])
    end
    local val = fetched_value()
    local flags = user_flags[0]
    if flags ~= 0 then
        return val, flags
    end
    return val
end


local function shdict_get_stale(zone, key)
    zone = check_zone(zone)
    local key_len
    key, key_len = key_of(key)
    if not key then
        return nil, key_len
    end

    local rc = fetch(zone, key, key_len, 1)
    if rc ~= MP_OK then
        if rc == MP_DECLINED then
            return nil
        end
        return nil, ffi_str(errmsg[0])
    end
    local val = fetched_value()
    local flags = user_flags[0]
    if flags ~= 0 then
        return val, flags, is_stale[0] == 1
    end
    return val, nil, is_stale[0] == 1
end


local function shdict_store(zone, op, key, value, exptime, flags)
    zone = check_zone(zone)
    if not exptime then
        exptime = 0
    elseif exptime < 0 then
        error('bad "exptime" argument', 2)
    end
    if not flags then
        flags = 0
    end
    local key_len
    key, key_len = key_of(key)
    if not key then
        return nil, key_len
    end

    local str, str_len, num = nil, 0, 0
    local typ = type(value)
    if typ == "string" then
        typ = TSTRING
        str = value
        str_len = #value
    elseif typ == "number" then
        typ = TNUMBER
        num = value
    elseif value == nil then
        typ = TNIL
    elseif typ == "boolean" then
        typ = TBOOLEAN
        num = value and 1 or 0
    elseif typ == "table" then
        local ok, s = pcall(encode, value)
        if not ok then
            return nil, "bad value type"
        end
        typ = TTABLE
        str = s
        str_len = #s
    else
        return nil, "bad value type"
    end

    local rc = C.mp_ffi_shdict_store(zone, op, key, key_len, typ, str,
                                     str_len, num, exptime * 1000, flags,
                                     forcible, errmsg)
    if rc == MP_OK then
        return true, nil, forcible[0] == 1
    end
    return false, ffi_str(errmsg[0]), forcible[0] == 1
end


local function shdict_set(zone, key, value, exptime, flags)
    return shdict_store(zone, SET, key, value, exptime, flags)
end


local function shdict_safe_set(zone, key, value, exptime, flags)
    return shdict_store(zone, SET + SAFE, key, value, exptime, flags)
end


local function shdict_add(zone, key, value, exptime, flags)
    return shdict_store(zone, ADD, key, value, exptime, flags)
end


local function shdict_safe_add(zone, key, value, exptime, flags)
    return shdict_store(zone, ADD + SAFE, key, value, exptime, flags)
end


local function shdict_replace(zone, key, value, exptime, flags)
    return shdict_store(zone, REPLACE, key, value, exptime, flags)
end


local function shdict_delete(zone, key)
    zone = check_zone(zone)
    local key_len
    key, key_len = key_of(key)
    if not key then
        return nil, key_len
    end
    C.mp_ffi_shdict_delete(zone, key, key_len)
    return true, nil, false
end


local function shdict_incr(zone, key, value, init, init_ttl)
    zone = check_zone(zone)
    local key_len
    key, key_len = key_of(key)
    if not key then
        return nil, key_len
    end

    if type(value) ~= "number" then
        value = tonumber(value)
    end
    num_value[0] = value   -- nil raises "cannot convert 'nil' to 'double'"

    if init then
        local typ = type(init)
        if typ ~= "number" then
            init = tonumber(init)
            if not init then
                error("bad init arg: number expected, got " .. typ, 2)
            end
        end
    end
    if init_ttl ~= nil then
        local typ = type(init_ttl)
        if typ ~= "number" then
            init_ttl = tonumber(init_ttl)
            if not init_ttl then
                error("bad init_ttl arg: number expected, got " .. typ, 2)
            end
        end
        if init_ttl < 0 then
            error('bad "init_ttl" argument', 2)
        end
        if not init then
            error('must provide "init" when providing "init_ttl"', 2)
        end
    else
        init_ttl = 0
    end

    local rc = C.mp_ffi_shdict_incr(zone, key, key_len, num_value,
                                    init and 1 or 0, init or 0,
                                    init_ttl * 1000, forcible, errmsg)
    if rc ~= MP_OK then
        return nil, ffi_str(errmsg[0])
    end
    if not init then
        return num_value[0]
    end
    return num_value[0], nil, forcible[0] == 1
end


-- methods: the __index table of every ngx.shared.DICT object.
function _M.install(methods)
    methods.get = shdict_get
    methods.get_stale = shdict_get_stale
    methods.set = shdict_set
    methods.safe_set = shdict_safe_set
    methods.add = shdict_add
    methods.safe_add = shdict_safe_add
    methods.replace = shdict_replace
    methods.delete = shdict_delete
    methods.incr = shdict_incr
end


return _M
