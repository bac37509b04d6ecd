-- Removes still-queued task messages and records them as revoked, atomically.
-- KEYS: the queue's 4 priority lists, then kombu's `unacked` hash and `unacked_index` zset.
-- ARGV: result TTL in seconds (0 = none), date_done (ISO-8601 UTC), result key prefix, ids...
-- Returns one code per id: 0 = already final in the backend (left alone),
-- 1 = removed from a queue list (REVOKED written), 2 = not in any list (needs the broadcast).
local ttl = tonumber(ARGV[1])
local date_done = ARGV[2]
local prefix = ARGV[3]
local codes = {}
local wanted = {}

for i = 4, #ARGV do
  local id = ARGV[i]
  local code = 2
  local raw = redis.call('GET', prefix .. id)
  -- Only a value naming a final state can be one: a running task's (STARTED, PROGRESS) is not
  -- decoded at all, which was most of this script's time in a cancel-all of 1,000 tasks.
  if raw and (string.find(raw, 'SUCCESS', 1, true) or string.find(raw, 'FAILURE', 1, true)
      or string.find(raw, 'REVOKED', 1, true)) then
    local ok, meta = pcall(cjson.decode, raw)
    if ok and type(meta) == 'table' then
      local s = meta['status']
      if s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED' then code = 0 end
    end
  end
  codes[i - 3] = code
  if code ~= 0 then wanted[id] = i - 3 end
end

local function id_of(envelope)
  if type(envelope) ~= 'table' or type(envelope['headers']) ~= 'table' then return nil end
  local id = envelope['headers']['id']
  if type(id) ~= 'string' then return nil end
  return string.lower(id)
end

for k = 1, 4 do
  local key = KEYS[k]
  for _, raw in ipairs(redis.call('LRANGE', key, 0, -1)) do
    local ok, envelope = pcall(cjson.decode, raw)
    local at = ok and wanted[id_of(envelope) or ''] or nil
    if at and redis.call('LREM', key, 0, raw) > 0 then codes[at] = 1 end
  end
end

-- A message a dead worker left in `unacked` would be restored after the visibility timeout:
-- drop it too. (A live worker that holds it in memory is reached by the broadcast only.)
local unacked = redis.call('HGETALL', KEYS[5])
for j = 1, #unacked, 2 do
  local ok, entry = pcall(cjson.decode, unacked[j + 1])
  if ok and type(entry) == 'table' and wanted[id_of(entry[1]) or ''] then
    redis.call('HDEL', KEYS[5], unacked[j])
    redis.call('ZREM', KEYS[6], unacked[j])
  end
end

-- What a worker writes when it discards a revoked message (no worker ever will for these).
for id, at in pairs(wanted) do
  if codes[at] == 1 then
    local key = prefix .. id
    local value = '{"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", '
      .. '"exc_message": ["revoked"], "exc_module": "celery.exceptions"}, "traceback": null, '
      .. '"children": [], "date_done": "' .. date_done .. '", "task_id": "' .. id .. '"}'
    if ttl > 0 then
      redis.call('SETEX', key, ttl, value)
    else
      redis.call('SET', key, value)
    end
    redis.call('PUBLISH', key, value)
  end
end

return codes
