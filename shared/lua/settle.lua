-- Load an account from MongoDB under a new epoch, replacing what Redis holds, unless a
-- charge moved the account since the caller read it (then the caller reads again).
-- KEYS[1] account hash; ARGV: epoch and seq the caller read ('' if none), balance,
-- new epoch, calls, tokens spent, and the ledger's applied epoch and seq the balance
-- includes (the base position refunds are decided against, as in hydrate.lua).
-- Returns {1, old balance or ''} if settled, else {0, ''}.
local state = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'balance')
if (state[1] or '') ~= ARGV[1] or (state[2] or '') ~= ARGV[2] then
  return {0, ''}
end
redis.call('HSET', KEYS[1], 'balance', ARGV[3], 'epoch', ARGV[4], 'seq', 0,
           'calls', ARGV[5], 'spent', ARGV[6], 'base_epoch', ARGV[7], 'base_seq', ARGV[8])
return {1, state[3] or ''}
