--[[
  Rebuilds part of one partition's join state from Kafka after Redis lost it (see state-restore.ts).
  Called in chunks; the last call (ARGV[2] = "1") creates the epoch, and only then does the join
  script accept the partition again. Writing what exists already changes nothing, so a restore
  that died half way can simply run again.

  Input:
    KEYS[1] partition key prefix, e.g. "es:{p3}:"
    KEYS[2] the partition's deadline index
    KEYS[3] the partition's epoch
    KEYS[4] the partition's fused-bucket index

    ARGV[1] TTL of a request's state, ms
    ARGV[2] "1" on the last call: create the epoch
    ARGV[3] the epoch's floor: creation time before which nothing is remembered, ms
    ARGV[4] log time now (Kafka timestamp of the newest record read), ms
    ARGV[5] number of fused requests f, then f pairs: request id, creation time (ms)
    then the number of open requests o, then per open request:
      request id, creation time, deadline, number of predictions m, then m triples: model id, ok, bytes

  Output: the number of requests written.
]]
--- @include "join-keys"
local prefix = KEYS[1]
local deadlines = KEYS[2]
local epoch = KEYS[3]
local fusedIndex = KEYS[4]
local ttl = tonumber(ARGV[1])
local logTime = tonumber(ARGV[4])

local i = 5
local f = tonumber(ARGV[i])
i = i + 1
for _ = 1, f do
  local requestId, createdAt = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local minute = minuteOf(createdAt)
  redis.call('HSET', fusedBucketKey(prefix, minute), requestId, '1')
  redis.call('ZADD', fusedIndex, 'GT', logTime, minute)
end

local o = tonumber(ARGV[i])
i = i + 1
for _ = 1, o do
  local requestId, createdAt, deadline, m = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local stateKey = requestKey(prefix, requestId)
  local predKey = predictionsKey(prefix, requestId)
  if not redis.call('HGET', stateKey, FIELD.state) then
    redis.call('HSET', stateKey, FIELD.state, STATE.open, FIELD.deadline, deadline, FIELD.createdAt, createdAt, FIELD.probes, '', FIELD.okAnswers, 0)
    redis.call('PEXPIRE', stateKey, ttl)
    redis.call('ZADD', deadlines, deadline, requestId)
  end
  for _ = 1, m do
    local model, ok, bytes = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    i = i + 3
    if redis.call('HSETNX', predKey, model, bytes) == 1 and ok == '1' then redis.call('HINCRBY', stateKey, FIELD.okAnswers, 1) end
  end
  redis.call('PEXPIRE', predKey, ttl)
end

if ARGV[2] == '1' then
  redis.call('HSET', epoch, EPOCH.floor, ARGV[3], EPOCH.restoredAt, logTime)
end
return f + o
