-- Claims one chunk of a revoke's tasks for the cancel: writes REVOKED into each task's result
-- key unless the key exists, the same single command a worker runs with RECEIVED right before it
-- runs a task (docs/celery-contract.md, "Cancelling"). Whoever writes first decides: a task whose
-- key the cancel wrote never runs. One O(1) command per id: it never reads the queue.
-- ARGV: TTL of the REVOKED values in seconds, date_done (ISO-8601 UTC), result key prefix, ids...
-- Returns one code per id: 0 = already final in the backend (left alone), 1 = claimed by this
-- cancel: it never runs, 2 = claimed by a worker first (only the broadcast can stop it).
local ttl = ARGV[1]
local date_done = ARGV[2]
local prefix = ARGV[3]
local codes = {}

local function is_final(raw)
  -- Celery writes the status first (`{"status": "STARTED", ...`): read it there without
  -- decoding; decode only other shapes that may name a final state.
  local s = string.match(raw, '^{"status": ?"(%u+)"')
  if not s then
    if not (string.find(raw, 'SUCCESS', 1, true) or string.find(raw, 'FAILURE', 1, true)
        or string.find(raw, 'REVOKED', 1, true)) then
      return false
    end
    local ok, meta = pcall(cjson.decode, raw)
    if not ok or type(meta) ~= 'table' then return false end
    s = meta['status']
  end
  return s == 'SUCCESS' or s == 'FAILURE' or s == 'REVOKED'
end

for i = 4, #ARGV do
  local id = ARGV[i]
  local key = prefix .. id
  -- What a worker writes when it discards a revoked message.
  local value = '{"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", '
    .. '"exc_message": ["revoked"], "exc_module": "celery.exceptions"}, "traceback": null, '
    .. '"children": [], "date_done": "' .. date_done .. '", "task_id": "' .. id .. '"}'
  -- Not PUBLISHed as a worker's write is: nobody waits on a task the service itself cancelled
  -- (its row is cancelled already), and the worker that discards the message later publishes
  -- its own REVOKED.
  local before = redis.call('SET', key, value, 'NX', 'GET', 'EX', ttl)
  local code
  if not before then
    code = 1
  elseif is_final(before) then
    code = 0
  else
    code = 2
  end
  codes[i - 3] = code
end

return codes
