-- A delivered meme: its charge is final, so the pending-charge record goes.
-- KEYS[1] pending charges, KEYS[2] their deadlines; ARGV: charge id. Returns 1 if it was there.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
