-- Pending charges of one shard past their deadline by Redis's own clock (the clock the
-- charge script set them by), oldest first.
-- KEYS[1] the shard's deadlines (charge id -> deadline ms); ARGV[1] how many at most.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, ARGV[1])
