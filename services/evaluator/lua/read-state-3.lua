--[[
  Reads everything a metrics snapshot is computed from, in one consistent view.

  Input:
    KEYS[1] evaluator key prefix (see score-samples-3.lua and record-events-2.lua)
    KEYS[2] running totals (hash)
    KEYS[3] learned-weight losses (hash)

    ARGV[1] number of subjects, s, then the s subjects
    then the number of event buckets, e, then the e event bucket numbers

  Output:
    {totals (field, value, ...), losses (field, value, ...),
     the event buckets merged (field, summed count, ...),
     then per subject {subject, bucket1, {its fields and values}, bucket2, {...}, ...}}
    Every window bucket a subject still holds is returned; the caller picks those its window covers.
]]
local prefix = KEYS[1]
local out = {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}

local subjects = tonumber(ARGV[1])
local eventBase = 2 + subjects
local events = tonumber(ARGV[eventBase])

local sums = {}
local fields = {}
for i = 1, events do
  local kv = redis.call('HGETALL', prefix .. 'ev:' .. ARGV[eventBase + i])
  for j = 1, #kv, 2 do
    local f = kv[j]
    if sums[f] == nil then
      sums[f] = 0
      fields[#fields + 1] = f
    end
    sums[f] = sums[f] + tonumber(kv[j + 1])
  end
end
local merged = {}
for _, f in ipairs(fields) do
  merged[#merged + 1] = f
  merged[#merged + 1] = string.format('%d', sums[f])
end
out[3] = merged

for i = 1, subjects do
  local subject = ARGV[1 + i]
  local held = {subject}
  for _, b in ipairs(redis.call('ZRANGE', prefix .. 'wix:' .. subject, 0, -1)) do
    held[#held + 1] = b
    held[#held + 1] = redis.call('HGETALL', prefix .. 'win:' .. subject .. ':' .. b)
  end
  out[#out + 1] = held
end
return out
