-- Take back a repeated credit's tokens, which the ledger keeps out of MongoDB, once.
-- Only while the account is still in the credit's epoch: a hash loaded since
-- (hydration or settle) took its balance from MongoDB, which never counted them.
-- KEYS[1] account hash, KEYS[2] the revocation's marker (same hash tag)
-- ARGV: the credit's epoch, its amount, marker ttl seconds
-- Returns 1 revoked, 0 nothing to take back (another epoch, or no hash), 2 done before.
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  return 2
end
redis.call('HINCRBY', KEYS[1], 'balance', -tonumber(ARGV[2]))
return 1
