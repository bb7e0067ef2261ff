--[[
  Names of one partition's join state, built from the partition prefix that a script gets in KEYS
  and the generated schema (services/shared/redis-keys.ts).
]]
--- @include "schema"
local function requestKey(prefix, requestId) return prefix .. KEY.request .. requestId end
local function predictionsKey(prefix, requestId) return prefix .. KEY.request .. requestId .. KEY.predictions end
local function fusedBucketKey(prefix, minute) return prefix .. KEY.fusedBucket .. minute end
local function minuteOf(createdAt) return math.floor(createdAt / FUSED_BUCKET_MS) end
