-- Add purchased tokens, atomically with the outbox append, once per idempotency key:
-- the first call records its answer, a repeat with the same body fingerprint gets that
-- answer back, a different body a conflict.
-- KEYS[1] account hash, KEYS[2] outbox stream, KEYS[3] idempotency record
-- ARGV: account, amount, event id, reason, idempotency key, fingerprint, ttl seconds,
--       the largest balance a credit may reach, trace context (traceparent)
-- Returns {status, balance, epoch, seq, event id, outbox entry id} (a replay returns the
-- first credit's position);
-- status 0 applied, 1 not hydrated, 4 replayed (same key, same body), 5 conflict,
-- 6 the credit would take the balance over its limit (nothing changed).
local account_key, outbox, idem_key = KEYS[1], KEYS[2], KEYS[3]
local seen = redis.call('HMGET', idem_key, 'fingerprint', 'event_id', 'balance', 'entry',
                       'epoch', 'seq')
if seen[1] then
  if seen[1] ~= ARGV[6] then
    return {5, 0, 0, 0, seen[2], seen[4]}
  end
  return {4, tonumber(seen[3]), tonumber(seen[5]) or 0, tonumber(seen[6]) or 0, seen[2], seen[4]}
end
local state = redis.call('HMGET', account_key, 'balance', 'epoch')
local balance = tonumber(state[1])
if not balance then
  return {1, 0, 0, 0, '', ''}
end
if balance + tonumber(ARGV[2]) > tonumber(ARGV[8]) then
  return {6, balance, 0, 0, '', ''}
end
-- HINCRBY keeps the counters exact integers; Lua's own numbers print in %.14g.
balance = redis.call('HINCRBY', account_key, 'balance', ARGV[2])
local seq = redis.call('HINCRBY', account_key, 'seq', 1)
local entry = redis.call('XADD', outbox, '*', 'i', ARGV[3], 't', 'credit', 'a', ARGV[1],
           'n', ARGV[2], 'e', state[2], 's', seq, 'r', ARGV[4], 'q', ARGV[5], 'c', '',
           'x', ARGV[9] or '')
redis.call('HSET', idem_key, 'fingerprint', ARGV[6], 'event_id', ARGV[3],
           'balance', string.format('%d', balance), 'entry', entry, 'epoch', state[2],
           'seq', seq)
redis.call('EXPIRE', idem_key, tonumber(ARGV[7]))
return {0, balance, tonumber(state[2]), seq, ARGV[3], entry}
