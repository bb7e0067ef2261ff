--[[
  Adds scored samples (a label joined to one subject's answer) of one subject to its rolling window,
  its labelled-sample count and its learned-weight loss, atomically. Every key is on the subject's
  slot (one hash tag). A sample counts once: a flag key per request (`done:<request id>`, expiring
  with the request's answers) is set with it, so one returned twice (a redelivered batch, a later
  answer for a labelled request, two instances) is skipped.

  A window is a ring of bucket hashes (see services/evaluator/window.ts): `n` samples,
  `c:<true>:<predicted>` confusion cells, `np` samples with probabilities and their summed `ll` log
  loss and `br` Brier score, `ae`/`se` summed absolute and squared errors. A count window's bucket
  follows from the sample's sequence number among the subject's labelled predictions, assigned here:
  floor((seq - 1) / bucket size); a time window's bucket is given. Buckets a window can no longer
  cover are deleted.

  Input:
    KEYS[1] the subject's key prefix, e.g. "es:{eval:s:knn}:" (buckets: prefix.."win:"..bucket; their
            index, a sorted set scored by bucket number: prefix.."wix"; flags: prefix.."done:"..id)
    KEYS[2] the subject's state (hash; `lab` labelled samples, `s` weighted loss sum, `w` weight sum)

    ARGV[1] window kind, "count" or "time"
    ARGV[2] labels per bucket (count windows)
    ARGV[3] buckets a window covers
    ARGV[4] TTL of a bucket, ms (refreshed on every write)
    ARGV[5] decay of earlier losses per label, in (0, 1)
    ARGV[6] TTL of a scored flag, ms (the request's TTL)
    ARGV[7] number of samples, n
    then 8 values per sample:
      request id, bucket (time windows; "" when the sample is already outside the window),
      confusion cell "<true>:<predicted>" (classification; else ""), log loss and Brier score
      (classification with probabilities; else ""), absolute and squared error (regression; else ""),
      loss for the learned weights ("" for the ensemble)

  Output: the number of samples added.
]]
--- @include "schema"
local prefix = KEYS[1]
local state = KEYS[2]
local kind = ARGV[1]
local bucketSize = tonumber(ARGV[2])
local buckets = tonumber(ARGV[3])
local bucketTtl = tonumber(ARGV[4])
local decay = tonumber(ARGV[5])
local flagTtl = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local index = prefix .. KEY.windowIndex

local added = 0
for i = 0, n - 1 do
  local base = 8 + i * 8
  local requestId = ARGV[base]
  local bucket = ARGV[base + 1]
  local cell = ARGV[base + 2]
  local logLoss = ARGV[base + 3]
  local brier = ARGV[base + 4]
  local absError = ARGV[base + 5]
  local squaredError = ARGV[base + 6]
  local loss = ARGV[base + 7]

  if redis.call('SET', prefix .. KEY.scored .. requestId, '1', 'NX', 'PX', flagTtl) then
    added = added + 1
    local seq = redis.call('HINCRBY', state, SUBJECT.labelled, 1)
    if kind == 'count' then
      bucket = string.format('%d', math.floor((seq - 1) / bucketSize))
    end
    if bucket ~= '' then
      local window = prefix .. KEY.windowBucket .. bucket
      redis.call('HINCRBY', window, WINDOW.samples, 1)
      if cell ~= '' then redis.call('HINCRBY', window, WINDOW.cell .. cell, 1) end
      if logLoss ~= '' then
        redis.call('HINCRBY', window, WINDOW.withProbabilities, 1)
        redis.call('HINCRBYFLOAT', window, WINDOW.logLoss, logLoss)
        redis.call('HINCRBYFLOAT', window, WINDOW.brier, brier)
      end
      if absError ~= '' then
        redis.call('HINCRBYFLOAT', window, WINDOW.absError, absError)
        redis.call('HINCRBYFLOAT', window, WINDOW.squaredError, squaredError)
      end
      redis.call('PEXPIRE', window, bucketTtl)

      redis.call('ZADD', index, bucket, bucket)
      redis.call('PEXPIRE', index, bucketTtl)
      local oldest = tonumber(bucket) - buckets
      local evicted = redis.call('ZRANGEBYSCORE', index, '-inf', oldest)
      for _, b in ipairs(evicted) do
        redis.call('DEL', prefix .. KEY.windowBucket .. b)
      end
      if #evicted > 0 then redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest) end
    end

    if loss ~= '' then
      local sum = tonumber(redis.call('HGET', state, SUBJECT.lossSum) or '0')
      local weight = tonumber(redis.call('HGET', state, SUBJECT.weightSum) or '0')
      -- %.17g: Lua's default number formatting keeps only 14 digits.
      redis.call('HSET', state,
        SUBJECT.lossSum, string.format('%.17g', decay * sum + tonumber(loss)),
        SUBJECT.weightSum, string.format('%.17g', decay * weight + 1))
    end
  end
end
return added
