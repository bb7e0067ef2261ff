--[[
  Reads one subject's state for a metrics snapshot, in one consistent view of that subject.

  Input:
    KEYS[1] the subject's key prefix (window buckets: prefix.."win:"..bucket, their index prefix.."wix";
            see score-samples-2.lua)
    KEYS[2] the subject's state (hash: `lab`, `s`, `w`)

  Output: {state (field, value, ...), bucket1, {its fields and values}, bucket2, {...}, ...}
    Every window bucket the subject still holds is returned; the caller picks those its window covers.
]]
--- @include "schema"
local prefix = KEYS[1]
local out = {redis.call('HGETALL', KEYS[2])}
for _, b in ipairs(redis.call('ZRANGE', prefix .. KEY.windowIndex, 0, -1)) do
  out[#out + 1] = b
  out[#out + 1] = redis.call('HGETALL', prefix .. KEY.windowBucket .. b)
end
return out
