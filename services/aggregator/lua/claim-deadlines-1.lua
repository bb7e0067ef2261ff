--[[
  Claims requests whose deadline has passed, for any aggregator instance to expire.

  A claim does not remove the request: it pushes its score forward by a lease. The claimant then
  appends a deadline record to the request's predictions partition; fusing that record removes the
  request from the index. If the claimant dies first, the lease runs out and another instance claims
  it again; a second deadline record for a fused request is ignored, so none is expired twice.

  Input:
    KEYS[1] the partition's deadline index (sorted set, score = deadline in ms)
    ARGV[1] now, ms since epoch
    ARGV[2] lease, ms
    ARGV[3] the most requests to claim
  Output: the claimed request ids, then the earliest score left in the index after the claim
  ("" if it is empty): when to sweep this partition next.
]]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, requestId in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_, requestId)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
due[#due + 1] = next[2] or ''
return due
