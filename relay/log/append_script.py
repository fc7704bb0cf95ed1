"""The Lua script that appends a shard's batch to the event log (``EventLog``): dedupe,
conversation owners, and the keys stored beside sealed events, in one atomic step. Pure
text; its arguments are built by :meth:`relay.log.event_log.EventLog.shard_call`."""

from __future__ import annotations

from typing import Final

APPEND_SCRIPT: Final = """
local buckets = tonumber(ARGV[2])
local owner_ttl = ARGV[3]
local legacy_keys = tonumber(ARGV[4])
local slots = tonumber(ARGV[6])
local first_event = 6 + slots * 3
local events = (#ARGV - first_event) / 4
local live = {KEYS[2]}
for b = 3, buckets do
  if redis.call('EXISTS', KEYS[b]) == 1 then live[#live + 1] = KEYS[b] end
end
-- What is stored beside the events, once per call for all the events that share it.
local data_key, wrapped, first_index, last_index, member = {}, {}, {}, {}, {}
local at = buckets + legacy_keys + tonumber(ARGV[5])
for s = 1, slots do
  local a = 6 + (s - 1) * 3
  wrapped[s] = ARGV[a + 1]
  data_key[s] = false
  if wrapped[s] ~= '' then
    at = at + 1
    data_key[s] = KEYS[at]
  end
  first_index[s] = at + 1
  at = at + tonumber(ARGV[a + 2])
  last_index[s] = at
  member[s] = ARGV[a + 3]
end
local keyed, indexed = {}, {}
local out = {}
local checked = 0
for k = 1, events do
  local a = first_event + (k - 1) * 4
  local digest, stored, partner, slot = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local seen = false
  for _, bucket in ipairs(live) do
    seen = redis.call('HGET', bucket, digest)
    if seen then break end
  end
  if not seen and legacy_keys > 0 then
    -- A key of the format before buckets; pcall: whatever else holds that name (a day
    -- bucket, for an agent named "day") is not a record of this event.
    local legacy = redis.pcall('GET', KEYS[buckets + k])
    if type(legacy) == 'string' then seen = legacy end
  end
  local owner = false
  if partner ~= '' then
    checked = checked + 1
    if not seen then
      -- The first partner to speak of the conversation owns it (kept 30 days from then).
      owner = redis.call(
        'SET', KEYS[buckets + legacy_keys + checked], partner, 'NX', 'GET', 'EX', owner_ttl)
    end
  end
  if seen then
    out[#out + 1] = seen
    out[#out + 1] = 1
  elseif owner and owner ~= partner then
    out[#out + 1] = owner
    out[#out + 1] = 2
  else
    -- The conversation's data key, made by the relay: stored unless one is there already.
    local there = false
    if slot > 0 and data_key[slot] and not keyed[slot] then
      there = redis.call('SET', data_key[slot], wrapped[slot], 'NX', 'GET')
    end
    if there and there ~= wrapped[slot] then
      out[#out + 1] = there
      out[#out + 1] = 3
    else
      local id = redis.call('XADD', KEYS[1], '*', 'e', stored)
      redis.call('HSET', KEYS[2], digest, id)
      if slot > 0 then
        keyed[slot] = true
        if not indexed[slot] then
          for i = first_index[slot], last_index[slot] do
            redis.call('SADD', KEYS[i], member[slot])
          end
          indexed[slot] = true
        end
      end
      out[#out + 1] = id
      out[#out + 1] = 0
    end
  end
end
redis.call('EXPIREAT', KEYS[2], ARGV[1])
return out
"""
"""Append a shard's batch with dedupe, each conversation kept to the partner that first used
it, and each conversation's data key stored with the first event sealed under it. KEYS: the
stream, today's dedupe bucket (written, always searched), the other buckets a resend may be
remembered in (searched if they exist, checked once per batch: tomorrow's rarely does), then,
while dedupe keys of the format before buckets may live (:meth:`EventLog.start`), each
event's such key (read only), then the conversation owner key of each event whose owner is to
be checked, in order, then for each *slot* (the key writes some of the events carry, given
once per call however many events carry them) its data key to store (if it has one) and the
party index sets to add its subject to. ARGV: when today's bucket expires, how many buckets
(the stream included), how long an owner is kept, how many keys of the old format there are
(0 or one per event), how many owner keys, how many slots; then for each slot its wrapped
data key ('' for none), how many party index sets, and the subject they list; then for each
event its digest, stored envelope, partner ('' when there is nothing to check: no
conversation, or an owner known already) and slot (0 for none). An event is stored only with
its slot's writes done: by itself, or by an earlier event of the call.
Each event's reply: its stream id and 0 (stored) or 1 (stored before); or its conversation's
partner and 2 (refused: another partner's conversation); or the conversation's data key and
3 (refused: sealed under another key than the one there)."""
