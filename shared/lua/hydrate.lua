-- Load an account's balance into Redis unless another gateway already did.
-- The base position is the ledger's applied (epoch, seq) the balance includes: a refund
-- of a charge from an earlier epoch is due only if its debit is at or before it.
-- KEYS[1] account hash; ARGV: balance, epoch, calls, tokens spent, base epoch, base seq.
-- Returns 1 if this call hydrated.
if redis.call('HEXISTS', KEYS[1], 'balance') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'epoch', ARGV[2], 'seq', 0,
           'calls', ARGV[3], 'spent', ARGV[4], 'base_epoch', ARGV[5], 'base_seq', ARGV[6])
return 1
