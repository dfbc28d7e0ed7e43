-- Give a charge back, at most once. A refund in the charge's own epoch also leaves the
-- decided marker, so a handler that refunds the same charge again after a settle or a
-- re-hydration changed the epoch gets nothing.
-- Redis gives the tokens back when its balance holds the debit: same epoch, record still
-- pending, or an earlier epoch's debit MongoDB had applied before the account was loaded
-- again (at or before the hydration's base position). Otherwise its balance never lost
-- them, and the refund goes to the ledger without tokens here: MongoDB may count the
-- debit (applied after the hydration read it, or before a rollback lost it), and the
-- ledger gives it back only if so. In the charge's own epoch only the handler, which
-- knows its meme was not delivered, does that: a sweeper or a drain only knows a deadline
-- passed, and a missing record may mean a confirmation.
-- Every refund event names its charge, so the ledger counts one refund per charge.
-- The sweeper refunds only a charge still past its deadline: between its listing and
-- this call the handler may have held the charge to write its meme (hold.lua).
-- KEYS[1] account hash, KEYS[2] outbox stream, KEYS[3] pending charges, KEYS[4] their
-- deadlines, KEYS[5] marker of a charge already decided
-- ARGV: account, charge id, amount, charge epoch, charge seq, event id, reason, request id,
--       marker ttl seconds for an earlier epoch's charge, and for a charge of this epoch,
--       the charge's reference (epoch:seq:id), '1' if the meme is known undelivered,
--       '1' if only an overdue charge is to be refunded (the sweeper),
--       trace context (traceparent)
-- Returns {status, balance, epoch, seq, outbox entry id}; status 0 refunded, 1 not hydrated,
-- 7 nothing to refund (confirmed or refunded before), 9 left to the ledger (Redis's
-- balance does not hold the debit; the event carries no tokens here), 10 not due (held
-- for delivery since it was listed).
local account_key, outbox, pending, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state = redis.call('HMGET', account_key, 'balance', 'epoch', 'base_epoch', 'base_seq')
local balance = tonumber(state[1])
if not balance then
  return {1, 0, 0, 0}
end
if ARGV[13] == '1' then
  local due = redis.call('ZSCORE', deadlines, ARGV[2])
  local now = redis.call('TIME')
  if due and tonumber(due) > tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) then
    return {10, balance, 0, 0}
  end
end
local was_pending = redis.call('HDEL', pending, ARGV[2])
redis.call('ZREM', deadlines, ARGV[2])
local charge_epoch, charge_seq = tonumber(ARGV[4]), tonumber(ARGV[5])
local epoch = tonumber(state[2])
local status = 0
if charge_epoch == epoch then
  if was_pending == 1 then
    redis.call('SET', KEYS[5], '1', 'EX', tonumber(ARGV[10]))
  elseif ARGV[12] ~= '1' or not redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[10])) then
    return {7, balance, 0, 0}
  else
    status = 9
  end
else
  if not redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[9])) then
    return {7, balance, 0, 0}
  end
  local base_epoch, base_seq = tonumber(state[3]) or 0, tonumber(state[4]) or 0
  if charge_epoch > base_epoch or (charge_epoch == base_epoch and charge_seq > base_seq) then
    status = 9
  end
end
if status == 0 then
  balance = redis.call('HINCRBY', account_key, 'balance', ARGV[3])
  redis.call('HINCRBY', account_key, 'calls', -1)
  redis.call('HINCRBY', account_key, 'spent', '-' .. ARGV[3])
end
local seq = redis.call('HINCRBY', account_key, 'seq', 1)
local entry = redis.call('XADD', outbox, '*', 'i', ARGV[6], 't', 'refund', 'a', ARGV[1], 'n', ARGV[3],
           'e', state[2], 's', seq, 'r', ARGV[7], 'q', ARGV[8], 'c', ARGV[11],
           'x', ARGV[14] or '')
return {status, balance, epoch, seq, entry}
