-- Sliding log of grants weighted by units, plus a pacing clock (GCRA), timed by Redis.
-- KEYS[1] the log (a sorted set: score = grant time in µs, member = "<uuid>:<weight>");
-- KEYS[2] the pacing clock (GCRA "theoretical arrival time", µs).
-- ARGV: limit, window (µs), weight, member id. Returns {1, 0} granted or {0, wait µs}.
-- Guarantee: the units granted in any window never exceed the limit.
local key, tat_key = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = window / limit
-- Pacing: grants are spread at limit/window instead of a burst at each window start,
-- so requests do not queue at the carrier (queueing is jitter the margin must absorb).
-- A tolerance of a few segments lets a late-waking worker catch up.
local tat = tonumber(redis.call('GET', tat_key) or '0')
local tolerance = interval * math.min(limit, 4)
if tat - now > tolerance then
    return {0, math.ceil(tat - now - tolerance) + 1}
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
end
if used + weight <= limit then
    redis.call('ZADD', key, now, ARGV[4] .. ':' .. weight)
    redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
    -- A worker that woke late may use a little of the time it lost (a credit of a few
    -- intervals) instead of losing it: the log above still caps every window.
    local base = math.max(tat, now - 4 * tolerance)
    redis.call('SET', tat_key, string.format('%d', base + weight * interval),
               'PX', math.ceil(window / 1000) + 1000)
    return {1, 0}
end
-- The strict bound: never more than the limit in any window.
local need = used + weight - limit
local freed = 0
for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if freed >= need then
        return {0, tonumber(entries[i + 1]) + window - now + 1}
    end
end
return {0, window}
