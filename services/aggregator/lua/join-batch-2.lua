--[[
  Joins one batch of messages from one predictions partition, atomically.

  A request is fused exactly once: the message that completes it (or its deadline record) moves it
  from "open" to "fusing" and records that message's offset. If the batch's Kafka transaction never
  commits, the same message is delivered again and, seeing its own offset, fuses again; any other
  message for a request that is no longer open is a duplicate or late.

  Input:
    KEYS[1] partition key prefix, e.g. "es:{p3}:" (request keys are prefix.."req:"..id and ..":m")
    KEYS[2] the partition's deadline index (sorted set, score = deadline in ms)

    ARGV[1] now, ms since epoch
    ARGV[2] TTL of a request's state, ms (outlives the deadline so late answers are recognised)
    ARGV[3] models to wait for, comma separated (expected models whose breaker is not open)
    ARGV[4] number of messages, n
    then 6 values per message:
      kind ("p" prediction, "d" deadline record), request id, model id ("" for "d"),
      Kafka offset, deadline (ms since epoch), payload (prediction bytes; "" for "d")

  Output: one array per message, in order:
    {0}                                      pending: still waiting for models
    {1, why, model1, bytes1, model2, ...}    fuse now; why = "all" (everyone waited for answered)
                                             or "deadline"; then every stored prediction
    {2}                                      duplicate: this model's answer was already joined
    {3}                                      late: the request was already fused without this model
    {4}                                      deadline record for a request no longer open: ignored
]]
local prefix = KEYS[1]
local deadlines = KEYS[2]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local waitFor = {}
for model in string.gmatch(ARGV[3], '[^,]+') do
  waitFor[#waitFor + 1] = model
end
local n = tonumber(ARGV[4])

-- Every stored prediction, as {1, why, model1, bytes1, ...}, from one HGETALL reply.
local function fuseOutcome(why, all)
  local out = {1, why}
  for i = 1, #all do
    out[#out + 1] = all[i]
  end
  return out
end

local function markFusing(stateKey, requestId, offset, all)
  local models = {}
  for i = 1, #all, 2 do
    models[#models + 1] = all[i]
  end
  redis.call('HSET', stateKey, 'st', 'fusing', 'o', offset, 'c', table.concat(models, ','))
  redis.call('ZREM', deadlines, requestId)
end

-- The stored predictions if every awaited model has answered, else nil. A hash with fewer fields
-- than awaited models cannot be complete, which spares reading it for every message but the last.
local function completeJoin(predKey, stored)
  if stored < #waitFor then return nil end
  local all = redis.call('HGETALL', predKey)
  local have = {}
  for i = 1, #all, 2 do
    have[all[i]] = true
  end
  for _, m in ipairs(waitFor) do
    if not have[m] then return nil end
  end
  return all
end

local function contributed(stateKey, model)
  local c = redis.call('HGET', stateKey, 'c')
  if not c then return false end
  for m in string.gmatch(c, '[^,]+') do
    if m == model then return true end
  end
  return false
end

local results = {}
for i = 0, n - 1 do
  local base = 5 + i * 6
  local kind = ARGV[base]
  local requestId = ARGV[base + 1]
  local model = ARGV[base + 2]
  local offset = ARGV[base + 3]
  local deadline = ARGV[base + 4]
  local payload = ARGV[base + 5]
  local stateKey = prefix .. 'req:' .. requestId
  local predKey = stateKey .. ':m'

  local state = redis.call('HGET', stateKey, 'st')
  -- How many predictions the request holds after this one joined; 0 when it did not join.
  local stored = 0
  if kind == 'p' and not state then
    -- A new request: its state and predictions start together and expire together.
    state = 'open'
    redis.call('HSET', stateKey, 'st', 'open', 'dl', deadline)
    redis.call('PEXPIRE', stateKey, ttl)
    redis.call('ZADD', deadlines, deadline, requestId)
    redis.call('HSET', predKey, model, payload)
    redis.call('PEXPIRE', predKey, ttl)
    stored = 1
  elseif state == 'open' and kind == 'p' then
    if redis.call('HSETNX', predKey, model, payload) == 1 then stored = redis.call('HLEN', predKey) end
  end

  if state == 'open' then
    if kind == 'd' then
      local all = redis.call('HGETALL', predKey)
      markFusing(stateKey, requestId, offset, all)
      results[#results + 1] = fuseOutcome('deadline', all)
    elseif stored == 0 then
      results[#results + 1] = {2}
    else
      local all = completeJoin(predKey, stored)
      if all then
        markFusing(stateKey, requestId, offset, all)
        results[#results + 1] = fuseOutcome('all', all)
      else
        results[#results + 1] = {0}
      end
    end
  elseif state == 'fusing' and redis.call('HGET', stateKey, 'o') == offset then
    -- The message that fused this request, delivered again: its transaction did not commit.
    local why = 'all'
    if kind == 'd' then why = 'deadline' end
    results[#results + 1] = fuseOutcome(why, redis.call('HGETALL', predKey))
  elseif kind == 'd' then
    results[#results + 1] = {4}
  elseif state and contributed(stateKey, model) then
    results[#results + 1] = {2}
  else
    results[#results + 1] = {3}
  end
end
return results
