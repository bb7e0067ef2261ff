--[[
  Adds scored samples (a label joined to one subject's answer) to the subjects' rolling windows, the
  running totals and the learned-weight losses, atomically. A sample counts once: the request's
  `s:<subject>` field is set with it, so one returned twice (a redelivered batch, two instances) is
  skipped.

  A window is a ring of bucket hashes per subject (see services/evaluator/window.ts): `n` samples,
  `c:<true>:<predicted>` confusion cells, `np` samples with probabilities and their summed `ll` log
  loss and `br` Brier score, `ae`/`se` summed absolute and squared errors. A count window's bucket
  follows from the sample's sequence number among the subject's labelled predictions, assigned here:
  floor((seq - 1) / bucket size); a time window's bucket is given. Buckets a window can no longer
  cover are deleted.

  Input:
    KEYS[1] evaluator key prefix (buckets: prefix.."win:"..subject..":"..bucket; their index, a sorted
            set scored by bucket number: prefix.."wix:"..subject; requests: prefix.."req:"..id)
    KEYS[2] running totals (hash; `lab:<subject>` counts labelled predictions)
    KEYS[3] learned-weight losses (hash; `s:<model>` weighted loss sum, `w:<model>` weight sum)

    ARGV[1] window kind, "count" or "time"
    ARGV[2] labels per bucket (count windows)
    ARGV[3] buckets a window covers
    ARGV[4] TTL of a bucket, ms (refreshed on every write)
    ARGV[5] decay of earlier losses per label, in (0, 1)
    ARGV[6] number of samples, n
    then 9 values per sample:
      request id, subject, bucket (time windows; "" when the sample is already outside the window),
      confusion cell "<true>:<predicted>" (classification; else ""), log loss and Brier score
      (classification with probabilities; else ""), absolute and squared error (regression; else ""),
      loss for the learned weights ("" for the ensemble)

  Output: the number of samples added.
]]
local prefix = KEYS[1]
local totals = KEYS[2]
local learning = KEYS[3]
local kind = ARGV[1]
local bucketSize = tonumber(ARGV[2])
local buckets = tonumber(ARGV[3])
local bucketTtl = tonumber(ARGV[4])
local decay = tonumber(ARGV[5])
local n = tonumber(ARGV[6])

local added = 0
for i = 0, n - 1 do
  local base = 7 + i * 9
  local requestId = ARGV[base]
  local subject = ARGV[base + 1]
  local bucket = ARGV[base + 2]
  local cell = ARGV[base + 3]
  local logLoss = ARGV[base + 4]
  local brier = ARGV[base + 5]
  local absError = ARGV[base + 6]
  local squaredError = ARGV[base + 7]
  local loss = ARGV[base + 8]
  local requestKey = prefix .. 'req:' .. requestId

  -- A request whose hash expired meanwhile is not recreated (it would never expire).
  if redis.call('EXISTS', requestKey) == 1 and redis.call('HSETNX', requestKey, 's:' .. subject, '1') == 1 then
    added = added + 1
    local seq = redis.call('HINCRBY', totals, 'lab:' .. subject, 1)
    if kind == 'count' then
      bucket = string.format('%d', math.floor((seq - 1) / bucketSize))
    end
    if bucket ~= '' then
      local window = prefix .. 'win:' .. subject .. ':' .. bucket
      redis.call('HINCRBY', window, 'n', 1)
      if cell ~= '' then redis.call('HINCRBY', window, 'c:' .. cell, 1) end
      if logLoss ~= '' then
        redis.call('HINCRBY', window, 'np', 1)
        redis.call('HINCRBYFLOAT', window, 'll', logLoss)
        redis.call('HINCRBYFLOAT', window, 'br', brier)
      end
      if absError ~= '' then
        redis.call('HINCRBYFLOAT', window, 'ae', absError)
        redis.call('HINCRBYFLOAT', window, 'se', squaredError)
      end
      redis.call('PEXPIRE', window, bucketTtl)

      local index = prefix .. 'wix:' .. subject
      redis.call('ZADD', index, bucket, bucket)
      redis.call('PEXPIRE', index, bucketTtl)
      local oldest = tonumber(bucket) - buckets
      local evicted = redis.call('ZRANGEBYSCORE', index, '-inf', oldest)
      for _, b in ipairs(evicted) do
        redis.call('DEL', prefix .. 'win:' .. subject .. ':' .. b)
      end
      if #evicted > 0 then redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest) end
    end

    if loss ~= '' then
      local sumField = 's:' .. subject
      local weightField = 'w:' .. subject
      local sum = tonumber(redis.call('HGET', learning, sumField) or '0')
      local weight = tonumber(redis.call('HGET', learning, weightField) or '0')
      -- %.17g: Lua's default number formatting keeps only 14 digits.
      redis.call('HSET', learning,
        sumField, string.format('%.17g', decay * sum + tonumber(loss)),
        weightField, string.format('%.17g', decay * weight + 1))
    end
  end
end
return added
