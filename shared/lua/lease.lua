-- Take or renew the relay lease of one shard; only the holder may renew it.
-- KEYS[1] lease key; ARGV: owner id, ttl ms. Returns 1 if the caller holds the lease.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
