-- What the relay looks at on every pass, for each shard it holds, in one call: the
-- outbox's length, its oldest and newest entry ids ('' when empty), and whether someone
-- waits on the shard (its hurry stream, deleted as it is read: a waiter adds to it again
-- while it waits). The relay then blocks (XREAD) on entries newer than the newest, and on
-- the hurry streams, until a shard has news.
-- KEYS: for each shard, its outbox stream then its hurry stream.
-- Returns {length, oldest id, newest id, hurried (0/1)} for each shard, in order, flattened.
local heads = {}
for i = 1, #KEYS, 2 do
  local length = redis.call('XLEN', KEYS[i])
  local oldest, newest = '', ''
  if length > 0 then
    oldest = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1][1]
    newest = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)[1][1]
  end
  heads[#heads + 1] = length
  heads[#heads + 1] = oldest
  heads[#heads + 1] = newest
  heads[#heads + 1] = redis.call('DEL', KEYS[i + 1])
end
return heads
