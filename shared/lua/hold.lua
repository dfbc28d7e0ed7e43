-- A meme is about to be written: keep its charge from the sweeper while it is, or say
-- the sweeper took it first. A gateway frozen past the charge's deadline (a pause, a
-- stall) must not deliver a meme whose charge was already refunded.
-- KEYS[1] pending charges, KEYS[2] their deadlines; ARGV: charge id, milliseconds to hold.
-- Returns 1 if the charge is still pending (its deadline now that far away), else 0.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], string.format('%d', now_ms + tonumber(ARGV[2])), ARGV[1])
return 1
