"""The Lua scripts that keep a Redis consumer group from reading past a trim gap.

Trim gaps: XREADGROUP `>` silently reads past entries the stream's cap trimmed
before the group got to them. So new entries are read by a script that first
compares the group's last-delivered id with the stream's first entry: older (and
not the id just before it, where `close_gap` leaves a group) means entries after
it were trimmed unread. Then the script reads nothing and reports the gap; the
group stays where it was until the gap is healed and closed (`close_gap`: the
group moves to the id just before the first entry, unless another consumer moved
it meanwhile). (Redis 7's max-deleted-entry-id is no help: trimming does not move
it, only XDEL does; and its `lag` counts trimmed entries as not yet delivered.)
A group at 0-0 has never read anything, and cannot be told from a group created
`from_start`, which wants what the stream holds: it is never said to be behind.

Split from broker/redis_streams.py, which runs them: the scripts are a program of
their own (in Lua, run atomically by Redis), and the reason they exist is this one.
"""

from __future__ import annotations

# The group's last-delivered id (nil when the stream or the group does not exist).
_GROUP_POSITION = """
local function position(key, group)
    if redis.call('EXISTS', key) == 0 then return nil end
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local name, last = nil, nil
        for i = 1, #info, 2 do
            if info[i] == 'name' then name = info[i + 1] end
            if info[i] == 'last-delivered-id' then last = info[i + 1] end
        end
        if name == group then return last end
    end
    return nil
end
local function older(a, b)
    local am, as = string.match(a, '^(%d+)-(%d+)$')
    local bm, bs = string.match(b, '^(%d+)-(%d+)$')
    if #am ~= #bm then return #am < #bm end
    if am ~= bm then return am < bm end
    if #as ~= #bs then return #as < #bs end
    return as < bs
end
-- The greatest id below `id` (as broker.protocol.id_before writes it).
local function predecessor(id)
    local m, s = string.match(id, '^(%d+)-(%d+)$')
    if s ~= '0' then return m .. '-' .. string.format('%d', tonumber(s) - 1) end
    return string.format('%d', tonumber(m) - 1) .. '-18446744073709551615'
end
-- Whether entries after `last` were trimmed before `first` (the stream's first entry):
-- `last` is older than `first`, and not the id `close_gap` leaves just before it. A group
-- at 0-0 never read; it cannot be told from one that wants what the stream holds.
local function trimmed_after(last, first)
    return last ~= '0-0' and older(last, first) and last ~= predecessor(first)
end
"""

# KEYS: stream; ARGV: group, consumer, count.
# -> {'nogroup'} | {'gap', last-delivered-id, first-id} | {'entries', last-delivered-id, [...]}
READ_NEW = (
    _GROUP_POSITION
    + """
local key, group = KEYS[1], ARGV[1]
local last = position(key, group)
if last == nil then return {'nogroup'} end
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
if first[1] ~= nil and trimmed_after(last, first[1][1]) then
    return {'gap', last, first[1][1]}
end
local read = redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', ARGV[3],
                        'STREAMS', key, '>')
if not read then return {'entries', last, {}} end
return {'entries', last, read[1][2]}
"""
)

# KEYS: stream; ARGV: group, the gap's after-id, the new position. 1: moved, 0: not.
CLOSE_GAP = (
    _GROUP_POSITION
    + """
if position(KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
)
