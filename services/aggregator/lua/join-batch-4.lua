--[[
  Joins one batch of messages from one predictions partition, atomically.

  A request is fused exactly once: the message that completes it (or its deadline record) moves it
  from "open" to "fusing" and records that message's offset. If the batch's Kafka transaction never
  commits, the same message is delivered again and, seeing its own offset, fuses again; any other
  message for a request that is no longer open is a duplicate or late.

  Whom a request waits for: every model in ARGV[3] (breaker closed) and, for the first ARGV[5]
  requests this call opens, the half-open models in ARGV[4] (probes). It closes when all of them
  answered and at least `quorum` models answered OK; otherwise at its deadline record. Models that
  are not awaited still join, and whatever they answered before the request closed is used.

  Once fusing, the request id is also kept in a small per-partition "fused" hash bucketed by the
  request's creation minute. Buckets are dropped once no request in them was fused for
  `fusedMemoryMs` of log time (Kafka timestamps, so an outage evicts nothing). A message for a
  request without state is checked against them: fused already (late), older than what is
  remembered (expired), or new.

  Input:
    KEYS[1] partition key prefix, e.g. "es:{p3}:" (request, predictions and fused-bucket keys are
            built from it by includes/join-keys.lua)
    KEYS[2] the partition's deadline index (sorted set, score = deadline in ms)
    KEYS[3] the partition's epoch (hash: "floor" = creation time below which nothing is remembered);
            missing means this partition's state was lost (Redis restarted empty, flushed, failed over)
    KEYS[4] the partition's fused-bucket index (sorted set: minute -> last log time a request in it fused)

    ARGV[1] now, ms since epoch
    ARGV[2] TTL of a request's state, ms (outlives the deadline so late answers are recognised)
    ARGV[3] models every request waits for, comma separated
    ARGV[4] half-open models that probe requests also wait for, comma separated
    ARGV[5] how many new requests may be probes
    ARGV[6] quorum: fewest OK answers for a request to close before its deadline
    ARGV[7] log time of the batch (Kafka timestamp of its last message), ms
    ARGV[8] how long fused requests are remembered, ms of log time
    ARGV[9] number of messages, n
    then 7 values per message:
      kind ("p" prediction, "d" deadline record), request id, model id ("" for "d"),
      Kafka offset, request creation time (ms; "0" for "d"), deadline (ms since epoch; "0" for "d"),
      ok ("1" if the prediction's status is OK), payload (prediction bytes; "" for "d")

  Output: {-1} if the epoch is missing (nothing was changed), else one array per message, in order,
  then the number of probe requests opened:
    {0}                                               pending: still waiting for models
    {1, why, awaited, probes, fusedAt, model1, bytes1, ...}
                                                      fuse now; why = "all" or "deadline"; awaited
                                                      and probes comma separated; fusedAt the ARGV[1]
                                                      of the call that closed it (the same again on
                                                      a replay, so a result fused twice is the same
                                                      bytes); then every stored prediction
    {2}                                               duplicate: this model's answer was already joined
    {3}                                               late: the request was already fused without it
    {4}                                               deadline record for a request no longer open
    {5}                                               expired: the request is older than what the
                                                      partition remembers of fused requests
]]
--- @include "join-keys"
local prefix = KEYS[1]
local deadlines = KEYS[2]
local epoch = KEYS[3]
local fusedIndex = KEYS[4]
if redis.call('EXISTS', epoch) == 0 then return {-1} end

local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local function csv(s)
  local out = {}
  for m in string.gmatch(s, '[^,]+') do out[#out + 1] = m end
  return out
end
local waitFor = csv(ARGV[3])
local probeModels = ARGV[4]
local probeBudget = tonumber(ARGV[5])
local quorum = tonumber(ARGV[6])
local logTime = tonumber(ARGV[7])
local fusedMemory = tonumber(ARGV[8])
local n = tonumber(ARGV[9])
local floor = tonumber(redis.call('HGET', epoch, EPOCH.floor) or '0')
local probesOpened = 0

local function bucketKey(createdAt)
  return fusedBucketKey(prefix, minuteOf(createdAt))
end

-- A request's state fields, read once per message with HMGET (in this order).
local F = {FIELD.state, FIELD.probes, FIELD.okAnswers, FIELD.createdAt, FIELD.fusedBy, FIELD.awaited, FIELD.fusedAt, FIELD.contributors}
local ST, PROBES, OK, CREATED, FUSED_BY, AWAITED, FUSED_AT, CONTRIBUTORS = 1, 2, 3, 4, 5, 6, 7, 8

local function awaitedOf(probes)
  if probes and probes ~= '' then
    if ARGV[3] == '' then return probes end
    return ARGV[3] .. ',' .. probes
  end
  return ARGV[3]
end

-- {1, why, awaited, probes, fusedAt, model1, bytes1, ...} from one HGETALL reply.
local function fuseOutcome(why, awaited, probes, fusedAt, all)
  local out = {1, why, awaited, probes, fusedAt}
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end

-- Written once at the end of the call, in one command each rather than one per request: deadline
-- index entries of requests opened here (unless fused here too) and removed, and fused buckets.
-- Nothing in this call reads them before that.
local openedDeadlines = {}
local closedDeadlines = {}
local fusedByMinute = {}

local function markFusing(stateKey, requestId, offset, awaited, all, createdAt)
  local models = {}
  for i = 1, #all, 2 do models[#models + 1] = all[i] end
  redis.call('HSET', stateKey, FIELD.state, STATE.fusing, FIELD.fusedBy, offset, FIELD.contributors, table.concat(models, ','), FIELD.awaited, awaited, FIELD.fusedAt, ARGV[1])
  if openedDeadlines[requestId] then
    openedDeadlines[requestId] = nil
  else
    closedDeadlines[#closedDeadlines + 1] = requestId
  end
  local minute = minuteOf(tonumber(createdAt or '0'))
  local bucket = fusedByMinute[minute]
  if not bucket then
    bucket = {}
    fusedByMinute[minute] = bucket
  end
  bucket[#bucket + 1] = requestId
  bucket[#bucket + 1] = '1'
end

-- The stored predictions if every awaited model answered and quorum is met, else nil.
local function completeJoin(predKey, stored, okAnswers, probes)
  local need = csv(awaitedOf(probes))
  if stored < #need or stored < quorum then return nil end
  if okAnswers < quorum then return nil end
  local all = redis.call('HGETALL', predKey)
  local have = {}
  for i = 1, #all, 2 do have[all[i]] = true end
  for _, m in ipairs(need) do
    if not have[m] then return nil end
  end
  return all
end

local function contributed(contributors, model)
  if not contributors then return false end
  for m in string.gmatch(contributors, '[^,]+') do
    if m == model then return true end
  end
  return false
end

-- A request without state: fused and forgotten (late), older than memory (expired), or new (nil).
local function unknownRequest(requestId, createdAt)
  if redis.call('HEXISTS', bucketKey(createdAt), requestId) == 1 then return 3 end
  if createdAt < floor then return 5 end
  return nil
end

-- Opens a request; returns the fields it now has, as HMGET would.
local function openRequest(stateKey, requestId, createdAt, deadline)
  local pw = ''
  if probeBudget > probesOpened and probeModels ~= '' then
    pw = probeModels
    probesOpened = probesOpened + 1
  end
  redis.call('HSET', stateKey, FIELD.state, STATE.open, FIELD.deadline, deadline, FIELD.createdAt, createdAt, FIELD.probes, pw, FIELD.okAnswers, 0)
  redis.call('PEXPIRE', stateKey, ttl)
  openedDeadlines[requestId] = deadline
  return {STATE.open, pw, '0', tostring(createdAt), false, false, false, false}
end

local results = {}
for i = 0, n - 1 do
  local base = 10 + i * 8
  local kind = ARGV[base]
  local requestId = ARGV[base + 1]
  local model = ARGV[base + 2]
  local offset = ARGV[base + 3]
  local createdAt = tonumber(ARGV[base + 4])
  local deadline = ARGV[base + 5]
  local ok = ARGV[base + 6]
  local payload = ARGV[base + 7]
  local stateKey = requestKey(prefix, requestId)
  local predKey = predictionsKey(prefix, requestId)

  local f = redis.call('HMGET', stateKey, unpack(F))
  local state = f[ST]
  local verdict = nil
  if kind == 'p' and not state then
    verdict = unknownRequest(requestId, createdAt)
    if not verdict then
      f = openRequest(stateKey, requestId, createdAt, deadline)
      state = STATE.open
    end
  end
  -- How many predictions the request holds after this one joined; 0 when it did not join.
  local stored = 0
  local okAnswers = tonumber(f[OK] or '0')
  if state == STATE.open and kind == 'p' and redis.call('HSETNX', predKey, model, payload) == 1 then
    stored = redis.call('HLEN', predKey)
    if ok == '1' then okAnswers = redis.call('HINCRBY', stateKey, FIELD.okAnswers, 1) end
    if stored == 1 then redis.call('PEXPIRE', predKey, ttl) end
  end

  if verdict then
    results[#results + 1] = {verdict}
  elseif state == STATE.open then
    if kind == 'd' then
      local all = redis.call('HGETALL', predKey)
      local awaited = awaitedOf(f[PROBES])
      markFusing(stateKey, requestId, offset, awaited, all, f[CREATED])
      results[#results + 1] = fuseOutcome('deadline', awaited, f[PROBES] or '', ARGV[1], all)
    elseif stored == 0 then
      results[#results + 1] = {2}
    else
      local all = completeJoin(predKey, stored, okAnswers, f[PROBES])
      if all then
        local awaited = awaitedOf(f[PROBES])
        markFusing(stateKey, requestId, offset, awaited, all, f[CREATED])
        results[#results + 1] = fuseOutcome('all', awaited, f[PROBES] or '', ARGV[1], all)
      else
        results[#results + 1] = {0}
      end
    end
  elseif state == STATE.fusing and f[FUSED_BY] == offset then
    -- The message that fused this request, delivered again: its transaction did not commit.
    local why = 'all'
    if kind == 'd' then why = 'deadline' end
    results[#results + 1] = fuseOutcome(why, f[AWAITED] or '', f[PROBES] or '', f[FUSED_AT] or ARGV[1], redis.call('HGETALL', predKey))
  elseif kind == 'd' then
    results[#results + 1] = {4}
  elseif state and contributed(f[CONTRIBUTORS], model) then
    results[#results + 1] = {2}
  else
    results[#results + 1] = {3}
  end
end

-- Lua's unpack has a stack limit: write long argument lists in slices.
local SLICE = 1000
local function inSlices(command, key, args)
  for i = 1, #args, SLICE do
    redis.call(command, key, unpack(args, i, math.min(i + SLICE - 1, #args)))
  end
end
local adds = {}
for requestId, d in pairs(openedDeadlines) do
  adds[#adds + 1] = d
  adds[#adds + 1] = requestId
end
inSlices('ZADD', deadlines, adds)
inSlices('ZREM', deadlines, closedDeadlines)
for minute, bucket in pairs(fusedByMinute) do
  inSlices('HSET', fusedBucketKey(prefix, minute), bucket)
  redis.call('ZADD', fusedIndex, 'GT', logTime, minute)
end

-- Forget fused buckets in which nothing fused for fusedMemory of log time.
local stale = redis.call('ZRANGEBYSCORE', fusedIndex, '-inf', logTime - fusedMemory, 'LIMIT', 0, 16)
for _, minute in ipairs(stale) do
  redis.call('DEL', fusedBucketKey(prefix, minute))
  redis.call('ZREM', fusedIndex, minute)
  local upTo = (tonumber(minute) + 1) * FUSED_BUCKET_MS
  if upTo > floor then
    floor = upTo
    redis.call('HSET', epoch, EPOCH.floor, floor)
  end
end

results[#results + 1] = probesOpened
return results
