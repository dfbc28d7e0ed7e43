-- Give a lease up on shutdown so another relay takes the shard at once.
-- KEYS[1] lease key; ARGV: owner id.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
