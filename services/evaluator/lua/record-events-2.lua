--[[
  Records one batch of predictions, fused results or labels for evaluation, atomically, and returns
  what can now be scored.

  Every key is in one request shard (one hash tag): the batch's messages of that shard only.
  Per request a hash keeps each answer under its own field, written once (HSETNX), so a redelivered
  message changes nothing: `p:<model>` a model's answer, `f` the fused answer, `l` the label, `ml` the
  models the fused result listed missing for DEADLINE or CIRCUIT_OPEN. Label-independent figures are counted when an answer is first written, in the
  running totals and in the answer's event bucket: `pred:<model>`, `fused:<status>`, `miss:<model>`,
  a latency-sketch field, and `late:<model>` when a model's answer and a fused result that listed it
  missing both exist (whichever of the two arrives second counts it, so either order counts once).

  Input:
    KEYS[1] the shard's key prefix, e.g. "es:{eval:r3}:" (requests: prefix.."req:"..id; event
            buckets: prefix.."ev:"..bucket)
    KEYS[2] the shard's running totals (hash)

    ARGV[1] TTL of a request's hash, ms (set when it is created)
    ARGV[2] TTL of an event bucket, ms (refreshed on every write)
    ARGV[3] the subject name of the fused answer, e.g. "ensemble"
    ARGV[4] number of messages, n
    then 8 values per message:
      kind ("p" prediction, "f" fused result, "l" label), request id,
      model id ("p") or fusion status ("f") or "" ("l"),
      stored answer or label (bytes; "" for an answer that cannot be scored),
      event bucket ("" when outside the event window, and for "l"),
      latency-sketch field ("" for "l"),
      models missing from the fused result, comma separated ("f"; else ""),
      of those, the ones missing for DEADLINE or CIRCUIT_OPEN ("f"; else "")

  Output: one array per request of the batch that has a label and answers, in order of first
  appearance: {request id, label, subject1, answer1, subject2, answer2, ...}. Answers scored before
  come back too: score-samples counts each once (its flag lives on the subject's slot).
]]
--- @include "schema"
local prefix = KEYS[1]
local totals = KEYS[2]
local requestTtl = tonumber(ARGV[1])
local bucketTtl = tonumber(ARGV[2])
local ensemble = ARGV[3]
local n = tonumber(ARGV[4])

local function listed(list, item)
  for m in string.gmatch(list, '[^,]+') do
    if m == item then return true end
  end
  return false
end

local seen = {}
local order = {}
for i = 0, n - 1 do
  local base = 5 + i * 8
  local kind = ARGV[base]
  local requestId = ARGV[base + 1]
  local name = ARGV[base + 2]
  local stored = ARGV[base + 3]
  local bucket = ARGV[base + 4]
  local sketchField = ARGV[base + 5]
  local missing = ARGV[base + 6]
  local lateEligible = ARGV[base + 7]
  local requestKey = prefix .. KEY.request .. requestId

  local field = FIELD.label
  if kind == 'p' then
    field = FIELD.answer .. name
  elseif kind == 'f' then
    field = FIELD.fused
  end

  if redis.call('HSETNX', requestKey, field, stored) == 1 then
    if redis.call('PTTL', requestKey) < 0 then
      redis.call('PEXPIRE', requestKey, requestTtl)
    end
    local eventKey = false
    if bucket ~= '' then
      eventKey = prefix .. KEY.eventBucket .. bucket
    end
    local function count(counter)
      redis.call('HINCRBY', totals, counter, 1)
      if eventKey then redis.call('HINCRBY', eventKey, counter, 1) end
    end

    if kind == 'p' then
      count(COUNTER.predictions .. name)
      if eventKey then redis.call('HINCRBY', eventKey, sketchField, 1) end
      local late = redis.call('HGET', requestKey, FIELD.lateEligible)
      if late and listed(late, name) then count(COUNTER.late .. name) end
    elseif kind == 'f' then
      count(COUNTER.fused .. name)
      if eventKey then redis.call('HINCRBY', eventKey, sketchField, 1) end
      for m in string.gmatch(missing, '[^,]+') do
        count(COUNTER.missing .. m)
      end
      if lateEligible ~= '' then
        redis.call('HSET', requestKey, FIELD.lateEligible, lateEligible)
        for m in string.gmatch(lateEligible, '[^,]+') do
          if redis.call('HEXISTS', requestKey, FIELD.answer .. m) == 1 then count(COUNTER.late .. m) end
        end
      end
    end
    if eventKey then redis.call('PEXPIRE', eventKey, bucketTtl) end
  end

  if not seen[requestId] then
    seen[requestId] = true
    order[#order + 1] = requestId
  end
end

local results = {}
for _, requestId in ipairs(order) do
  local requestKey = prefix .. KEY.request .. requestId
  local label = redis.call('HGET', requestKey, FIELD.label)
  if label then
    local all = redis.call('HGETALL', requestKey)
    local out = {requestId, label}
    for j = 1, #all, 2 do
      local f = all[j]
      local subject = false
      if string.sub(f, 1, #FIELD.answer) == FIELD.answer then
        subject = string.sub(f, #FIELD.answer + 1)
      elseif f == FIELD.fused then
        subject = ensemble
      end
      if subject and all[j + 1] ~= '' then
        out[#out + 1] = subject
        out[#out + 1] = all[j + 1]
      end
    end
    if #out > 2 then results[#results + 1] = out end
  end
end
return results
