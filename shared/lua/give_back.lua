-- Give part of a region's slice back to the account's pool: lower the slice first, so
-- what goes back can no longer be spent here, and append the return to the outbox; the
-- ledger moves the tokens to the pool once it applies it (docs/multi-region.md).
-- KEYS[1] the book's hash, KEYS[2] outbox stream.
-- ARGV: book, tokens, event id, reason, trace context (traceparent)
-- Returns {status, balance, epoch, seq}; status 0 given back, 1 not hydrated,
-- 2 the slice holds fewer tokens (nothing changed).
local account_key, outbox = KEYS[1], KEYS[2]
local state = redis.call('HMGET', account_key, 'balance', 'epoch')
local balance = tonumber(state[1])
if not balance then
  return {1, 0, 0, 0}
end
if balance < tonumber(ARGV[2]) then
  return {2, balance, 0, 0}
end
-- HINCRBY keeps the counters exact integers; Lua's own numbers print in %.14g.
balance = redis.call('HINCRBY', account_key, 'balance', -tonumber(ARGV[2]))
local seq = redis.call('HINCRBY', account_key, 'seq', 1)
redis.call('XADD', outbox, '*', 'i', ARGV[3], 't', 'return', 'a', ARGV[1], 'n', ARGV[2],
           'e', state[2], 's', seq, 'r', ARGV[4], 'q', '', 'c', '', 'x', ARGV[5] or '')
return {0, balance, tonumber(state[2]), seq}
