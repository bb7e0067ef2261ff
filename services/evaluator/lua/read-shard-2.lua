--[[
  Reads one request shard's label-independent figures for a metrics snapshot, in one consistent view
  of that shard (a snapshot merges every shard's).

  Input:
    KEYS[1] the shard's key prefix (event buckets: prefix.."ev:"..bucket; see record-events-2.lua)
    KEYS[2] the shard's running totals (hash)

    ARGV[1] number of event buckets, e, then the e event bucket numbers

  Output: {totals (field, value, ...), the event buckets merged (field, summed count, ...)}
]]
--- @include "schema"
local prefix = KEYS[1]
local events = tonumber(ARGV[1])

local sums = {}
local fields = {}
for i = 1, events do
  local kv = redis.call('HGETALL', prefix .. KEY.eventBucket .. ARGV[1 + i])
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
return {redis.call('HGETALL', KEYS[2]), merged}
