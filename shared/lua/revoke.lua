-- Take back a repeated credit's tokens, which the ledger keeps out of MongoDB, once, and
-- only where Redis holds both the repeat and the first credit:
-- - the repeat: the account is still in the repeat's epoch (a hash loaded since, by a
--   hydration or a settle, took its balance from MongoDB, which never counted it);
-- - the first: it is earlier in the same numbering, or in the balance the hash was loaded
--   with (at or before its base position). Redis rolled back past the first credit, or
--   loaded the account before MongoDB counted it, holds the repeat alone: its balance is
--   already right.
-- KEYS[1] account hash, KEYS[2] the revocation's marker (same hash tag)
-- ARGV: the repeat's epoch, its amount, marker ttl seconds, the repeat's seq, the first
--       credit's epoch and seq (0 0 when unknown: claimed before positions were kept)
-- Returns 1 revoked, 0 Redis does not hold the repeat, 2 done before, 3 Redis does not
-- hold the first credit.
local state = redis.call('HMGET', KEYS[1], 'epoch', 'base_epoch', 'base_seq')
if state[1] ~= ARGV[1] then
  return 0
end
local first_epoch, first_seq = tonumber(ARGV[5]), tonumber(ARGV[6])
if first_epoch > 0 then
  local epoch, base_epoch, base_seq = tonumber(state[1]), tonumber(state[2]) or 0,
                                      tonumber(state[3]) or 0
  local earlier = first_epoch == epoch and first_seq < tonumber(ARGV[4])
  local loaded = first_epoch < base_epoch or (first_epoch == base_epoch and first_seq <= base_seq)
  if not (earlier or loaded) then
    return 3
  end
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  return 2
end
redis.call('HINCRBY', KEYS[1], 'balance', -tonumber(ARGV[2]))
return 1
