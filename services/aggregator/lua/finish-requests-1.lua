--[[
  Frees the predictions of requests whose fused result is committed to Kafka. The small state hash
  stays until its TTL so late answers are still recognised as late.

  Input:
    KEYS[1] partition key prefix, e.g. "es:{p3}:"
    ARGV    request ids
  Output: the number of requests finished.
]]
--- @include "join-keys"
local prefix = KEYS[1]
for i = 1, #ARGV do
  local stateKey = requestKey(prefix, ARGV[i])
  redis.call('DEL', predictionsKey(prefix, ARGV[i]))
  if redis.call('EXISTS', stateKey) == 1 then
    redis.call('HSET', stateKey, FIELD.state, STATE.done)
  end
end
return #ARGV
