-- What the relay looks at on every pass, for each shard it holds, in one call: the
-- outbox's length, its oldest entry id ('' when empty), and whether someone waits on the
-- shard (its hurry key, cleared as it is read: a waiter sets it again while it waits).
-- KEYS: for each shard, its outbox stream then its hurry key.
-- Returns {length, oldest id, hurried (0/1)} for each shard, in order, flattened.
local heads = {}
for i = 1, #KEYS, 2 do
  local length = redis.call('XLEN', KEYS[i])
  local oldest = ''
  if length > 0 then
    oldest = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1][1]
  end
  heads[#heads + 1] = length
  heads[#heads + 1] = oldest
  heads[#heads + 1] = redis.call('DEL', KEYS[i + 1])
end
return heads
