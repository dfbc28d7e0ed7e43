-- Rate-limit, balance check, debit, usage, next seq, outbox append and the pending-charge
-- record, atomically. The record lives until the answer is written (confirm.lua) or the
-- charge is refunded (refund.lua); a sweeper refunds records past their deadline.
-- KEYS[1] account hash, KEYS[2] outbox stream, KEYS[3] pending charges (hash),
-- KEYS[4] their deadlines (sorted set); all of the account's shard (same hash tag).
-- ARGV: account, price, rate (per s, 0 = unlimited), burst, event id (the charge id),
--       reason, request id, ms until the sweeper may refund, trace context (traceparent)
-- Returns {status, balance, epoch, seq, retry_after_ms};
-- status 0 charged, 1 not hydrated, 2 insufficient tokens, 3 rate limited.
local account_key, outbox, pending, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local price, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', account_key, 'balance', 'epoch', 'rl_tokens', 'rl_ts')
local balance = tonumber(state[1])
if not balance then
  return {1, 0, 0, 0, 0}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local bucket
if rate > 0 then
  bucket = tonumber(state[3]) or burst
  local last = tonumber(state[4]) or now_ms
  bucket = math.min(burst, bucket + math.max(0, now_ms - last) * rate / 1000)
  if bucket < 1 then
    return {3, balance, 0, 0, math.ceil((1 - bucket) * 1000 / rate)}
  end
end
if balance < price then
  return {2, balance, 0, 0, 0}
end
-- HINCRBY keeps the counters exact integers; Lua's own numbers print in %.14g.
balance = redis.call('HINCRBY', account_key, 'balance', -price)
local seq = redis.call('HINCRBY', account_key, 'seq', 1)
redis.call('HINCRBY', account_key, 'calls', 1)
redis.call('HINCRBY', account_key, 'spent', price)
if rate > 0 then
  redis.call('HSET', account_key, 'rl_tokens', string.format('%.6f', bucket - 1),
             'rl_ts', string.format('%d', now_ms))
end
local epoch = state[2]
redis.call('XADD', outbox, '*', 'i', ARGV[5], 't', 'debit', 'a', ARGV[1], 'n', price,
           'e', epoch, 's', seq, 'r', ARGV[6], 'q', ARGV[7], 'c', '', 'x', ARGV[9] or '')
redis.call('HSET', pending, ARGV[5], cjson.encode({ARGV[1], price, tonumber(epoch), seq, ARGV[6],
                                                   ARGV[7]}))
redis.call('ZADD', deadlines, string.format('%d', now_ms + tonumber(ARGV[8])), ARGV[5])
return {0, balance, tonumber(epoch), seq, 0}
