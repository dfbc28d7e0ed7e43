-- Load an account's balance into Redis unless another gateway already did.
-- The base position is the ledger's applied (epoch, seq) the balance includes: a refund
-- of a charge from an earlier epoch is due only if its debit is at or before it.
-- A region's book loaded again after its Redis was lost (ARGV[7], the close's event id,
-- given) starts empty, and its first event closes what the book held as spent
-- (docs/multi-region.md).
-- KEYS[1] account hash, KEYS[2] its outbox (a close only).
-- ARGV: balance, epoch, calls, tokens spent, base epoch, base seq[, close event id, book].
-- Returns 1 if this call hydrated.
if redis.call('HEXISTS', KEYS[1], 'balance') == 1 then
  return 0
end
local closing = ARGV[7] ~= nil
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'epoch', ARGV[2], 'seq', closing and 1 or 0,
           'calls', ARGV[3], 'spent', ARGV[4], 'base_epoch', ARGV[5], 'base_seq', ARGV[6])
if closing then
  redis.call('XADD', KEYS[2], '*', 'i', ARGV[7], 't', 'close', 'a', ARGV[8], 'n', 0,
             'e', ARGV[2], 's', 1, 'r', 'close:redis-lost', 'q', '', 'c', '', 'x', '')
end
return 1
