-- Load an account's balance into Redis unless another gateway already did.
-- KEYS[1] account hash; ARGV: balance, epoch, calls, tokens spent.
-- Returns 1 if this call hydrated.
if redis.call('HEXISTS', KEYS[1], 'balance') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'epoch', ARGV[2], 'seq', 0,
           'calls', ARGV[3], 'spent', ARGV[4])
return 1
