import { createHash } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './redis-driver.js';
import { MESSAGE_FIELD } from './redis-keys.js';

/**
 * Most commands (and characters) one inbox entry packs (INBOX_APPEND_PACKING). Bounds what one
 * read holds in the owner waiting for room under `maxInFlight`, and what one entry's
 * acknowledgement waits for.
 */
export const PACK_MAX_COUNT = 32;
export const PACK_MAX_CHARS = 256 * 1024;

/**
 * The atomic steps of the cluster, one Lua script each. Every script touches the keys of ONE
 * hash-tag slot only (a presence entry and its epoch counter, or one node's keys), so each
 * runs unchanged on Redis Cluster.
 */

/**
 * A script run with EVALSHA, falling back to EVAL (which also caches it) when the server
 * answers NOSCRIPT, e.g. after a restart or SCRIPT FLUSH.
 */
export class LuaScript {
  readonly sha: string;

  /**
   * `numberOfKeys` is exact; with `batched` it is the keys of one item and a call may carry
   * any positive number of items (their keys one after the other).
   */
  constructor(
    readonly name: string,
    readonly lua: string,
    readonly numberOfKeys: number,
    readonly batched = false,
  ) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    this.checkKeys(keys);
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return client.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** Queues the script on a pipeline or transaction (EVALSHA; see {@link runPipelined} for the fallback). */
  queue(pipeline: ChainableCommander, keys: readonly string[], args: readonly (string | number)[]): void {
    this.checkKeys(keys);
    pipeline.evalsha(this.sha, keys.length, ...keys, ...args);
  }

  private checkKeys(keys: readonly string[]): void {
    const fits = this.batched
      ? keys.length > 0 && keys.length % this.numberOfKeys === 0
      : keys.length === this.numberOfKeys;
    if (!fits) {
      const wanted = this.batched ? `a positive multiple of ${this.numberOfKeys}` : String(this.numberOfKeys);
      throw new Error(`script ${this.name} takes ${wanted} keys, got ${keys.length}`);
    }
  }
}

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * A Redis Cluster answer that means "not run here, try again": the slot moved (MOVED), is
 * migrating (ASK, TRYAGAIN), or the cluster is between states (CLUSTERDOWN). A command sent
 * alone follows these by itself; inside a pipeline that spans several slots ioredis leaves
 * them to the caller, who may simply send that command again.
 */
export function isClusterRedirection(error: unknown): boolean {
  return error instanceof Error && /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error.message);
}

export interface ScriptCall {
  script: LuaScript;
  keys: readonly string[];
  args: readonly (string | number)[];
}

/**
 * Runs many script calls in one pipeline; a call answered NOSCRIPT (or, on Redis Cluster,
 * redirected because its slot moved meanwhile) is run again on its own. Returns each call's
 * result or error, in order. On Redis Cluster every key of one pipeline must be served by
 * the same node: callers group by node (or slot) first.
 */
export async function runPipelined(
  client: RedisClient,
  calls: readonly ScriptCall[],
): Promise<Array<{ error: Error | null; result: unknown }>> {
  if (calls.length === 0) return [];
  const pipeline = client.pipeline();
  for (const call of calls) call.script.queue(pipeline, call.keys, call.args);
  const replies = (await pipeline.exec()) ?? [];
  return Promise.all(
    calls.map(async (call, index) => {
      const [error, result] = replies[index] ?? [new Error('no reply'), null];
      if (error && (isNoScript(error) || isClusterRedirection(error))) {
        try {
          return { error: null, result: await call.script.run(client, call.keys, call.args) };
        } catch (retryError) {
          return { error: retryError as Error, result: null };
        }
      }
      return { error: error ?? null, result };
    }),
  );
}

/**
 * Prefix of every script that writes cluster membership (presence, liveness, fencing, takeover
 * locks): it runs even while Redis refuses writes for lack of memory (maxmemory with
 * noeviction). Membership is small and bounded by the fleet; refusing it would make presence
 * untrue (a charge point connected but unlisted, or listed where it is not) exactly when callers
 * most need the truth. Commands and replies obey maxmemory and are refused, typed. Script flags
 * need Redis 7, as sharded pub/sub does.
 */
const MEMBERSHIP = '#!lua flags=allow-oom';

// Epochs are max(counter + 1, previous epoch + 1, Redis time in microseconds): monotonic per
// identity while the counter lives, and still above every pre-outage epoch after Redis lost its
// data, because a later connection always happens at a later time. Only Redis's clock is used.
// Microseconds since 1970 stay below 2^53 (exact in Lua doubles and JS numbers) until ~2255.
const NEXT_EPOCH = `
local function next_epoch(counter_key, previous_epoch)
  local counter = tonumber(redis.call('GET', counter_key) or '0') or 0
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local epoch = math.max(counter + 1, (previous_epoch or 0) + 1, now)
  return epoch
end
local function fmt(n) return string.format('%.0f', n) end
`;

// Batched presence scripts handle many identities in one call: on a standalone server any
// identities at all, on Redis Cluster those whose keys share one slot (callers group by slot).
// Each identity is handled exactly as if it had its own call, in the order given.

/**
 * Claims identities with a new, higher epoch each (the newest connection wins).
 * KEYS per identity: presence hash, epoch counter. ARGV: ttlMs, counterTtlMs, then per identity
 * node, protocol, connectedAt. Returns per identity, flattened:
 * epoch, prevNode, prevEpoch, prevProtocol, prevConnectedAt (false when none).
 */
export const PRESENCE_CLAIM = new LuaScript(
  'presenceClaim',
  `${MEMBERSHIP}${NEXT_EPOCH}
local out, n = {}, 0
for i = 1, #KEYS / 2 do
  local hash, counter = KEYS[2 * i - 1], KEYS[2 * i]
  local prev = redis.call('HMGET', hash, 'node', 'epoch', 'protocol', 'connectedAt')
  local epoch = next_epoch(counter, tonumber(prev[2] or '0'))
  redis.call('SET', counter, fmt(epoch), 'PX', ARGV[2])
  redis.call('HSET', hash, 'node', ARGV[3 * i], 'epoch', fmt(epoch), 'protocol', ARGV[3 * i + 1], 'connectedAt', ARGV[3 * i + 2])
  redis.call('PEXPIRE', hash, ARGV[1])
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = fmt(epoch), prev[1] or false, prev[2] or false, prev[3] or false, prev[4] or false
  n = n + 5
end
return out
`,
  2,
  true,
);

/**
 * Reads entries. KEYS per identity: presence hash.
 * Returns per identity, flattened: node, epoch, protocol, connectedAt (false when absent).
 */
export const PRESENCE_READ = new LuaScript(
  'presenceRead',
  // A read: it runs while Redis pauses writes (CLIENT PAUSE WRITE, a failover) and on replicas.
  `#!lua flags=no-writes
local out, n = {}, 0
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'node', 'epoch', 'protocol', 'connectedAt')
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = f[1], f[2], f[3], f[4]
  n = n + 4
end
return out
`,
  1,
  true,
);

/**
 * Deletes entries only while (node, epoch) still own them: an entry a newer connection claimed
 * since, on this node or another, stays.
 * KEYS per identity: presence hash. ARGV per identity: node, epoch.
 * Returns per identity: 1 removed, 0 left (someone else's, or absent).
 */
export const PRESENCE_REMOVE_IF_OWNER = new LuaScript(
  'presenceRemoveIfOwner',
  `${MEMBERSHIP}
local out = {}
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 'node', 'epoch')
  if cur[1] == ARGV[2 * i - 1] and tonumber(cur[2]) == tonumber(ARGV[2 * i]) then
    redis.call('DEL', KEYS[i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`,
  1,
  true,
);

/**
 * Gives up a claim whose handshake never opened: only while (node, epoch) still own the entry,
 * puts back the entry the claim displaced (a live socket elsewhere or here), or deletes it when
 * the claim displaced nothing. A newer claim (higher epoch) is never touched.
 * KEYS: presence hash. ARGV: node, epoch, ttlMs, then the displaced entry's node, epoch,
 * protocol, connectedAt (node '' when none).
 * Returns 2 restored, 1 removed, 0 left (someone else's, or absent).
 */
export const PRESENCE_RELEASE_CLAIM = new LuaScript(
  'presenceReleaseClaim',
  `${MEMBERSHIP}
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] ~= ARGV[1] or tonumber(cur[2]) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'node', ARGV[4], 'epoch', ARGV[5], 'protocol', ARGV[6], 'connectedAt', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 2
`,
  1,
);

/**
 * Extends the TTL of entries only while (node, epoch) still own them.
 * KEYS per identity: presence hash. ARGV: node, ttlMs, then per identity its epoch.
 * Returns per identity: 1 refreshed, 0 owned by someone else, -1 absent.
 */
export const PRESENCE_REFRESH_IF_OWNER = new LuaScript(
  'presenceRefreshIfOwner',
  `${MEMBERSHIP}
local out = {}
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 'node', 'epoch')
  if not cur[1] then
    out[i] = -1
  elseif cur[1] == ARGV[1] and tonumber(cur[2]) == tonumber(ARGV[i + 2]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`,
  1,
  true,
);

/** Status codes of {@link PRESENCE_REHYDRATE}. */
export const REHYDRATE_REFUSED = 0;
export const REHYDRATE_KEPT = 1;
export const REHYDRATE_WRITTEN = 2;
export const REHYDRATE_DISPLACED = 3;

/**
 * Re-registers local connections after Redis lost or expired their entries, never over a newer
 * owner. With an epoch: written when the entry is absent or holds an older epoch (any node),
 * kept (TTL refreshed) when it is this very connection, refused when the entry is newer.
 * With epoch 0 (a connection that never got an epoch because Redis was down when it
 * connected): kept under the entry's epoch when the entry is this very connection (this node,
 * same connectedAt: a claim of it landed meanwhile), refused when a connection that started
 * later owns it (on any node), else claimed with a new epoch.
 * KEYS per identity: presence hash, epoch counter. ARGV: node, ttlMs, counterTtlMs, then per
 * identity epoch, protocol, connectedAt.
 * Returns per identity, flattened: status, epoch, curNode, curEpoch, curProtocol, curConnectedAt
 * where cur* is the entry found before (false when none).
 */
export const PRESENCE_REHYDRATE = new LuaScript(
  'presenceRehydrate',
  `${MEMBERSHIP}${NEXT_EPOCH}
local node, ttl, counter_ttl = ARGV[1], ARGV[2], ARGV[3]
local function rehydrate(hash, counter_key, mine, protocol, connected_at)
  local cur = redis.call('HMGET', hash, 'node', 'epoch', 'protocol', 'connectedAt')
  local theirs = tonumber(cur[2] or '0') or 0
  local function found(status, epoch)
    return status, fmt(epoch), cur[1] or false, cur[2] or false, cur[3] or false, cur[4] or false
  end
  if mine == 0 then
    if cur[1] then
      local their_start, my_start = tonumber(cur[4]) or 0, tonumber(connected_at) or 0
      if cur[1] == node and their_start == my_start then
        -- This very connection is registered already (its claim landed meanwhile): one epoch per connection.
        redis.call('PEXPIRE', hash, ttl)
        return found(1, theirs)
      end
      if their_start > my_start then return found(0, theirs) end
    end
    mine = next_epoch(counter_key, theirs)
  elseif cur[1] then
    if cur[1] == node and theirs == mine then
      redis.call('PEXPIRE', hash, ttl)
      return found(1, mine)
    end
    if theirs >= mine then return found(0, theirs) end
  end
  local counter = tonumber(redis.call('GET', counter_key) or '0') or 0
  redis.call('SET', counter_key, fmt(math.max(counter, mine)), 'PX', counter_ttl)
  redis.call('HSET', hash, 'node', node, 'epoch', fmt(mine), 'protocol', protocol, 'connectedAt', connected_at)
  redis.call('PEXPIRE', hash, ttl)
  if cur[1] then return found(3, mine) end
  return found(2, mine)
end
local out, n = {}, 0
for i = 1, #KEYS / 2 do
  local a = 3 * i + 1
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6] =
    rehydrate(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[a]) or 0, ARGV[a + 1], ARGV[a + 2])
  n = n + 6
end
return out
`,
  2,
  true,
);

/**
 * Takes a token key (node liveness, takeover lock) when free, or keeps it when we hold it.
 * KEYS: key. ARGV: token, ttlMs. Returns { 1, 0 } when held, { 0, pttl } when another token holds it.
 */
export const TOKEN_ACQUIRE = new LuaScript(
  'tokenAcquire',
  `${MEMBERSHIP}
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return { 1, 0 }
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return { 1, 0 }
end
return { 0, redis.call('PTTL', KEYS[1]) }
`,
  1,
);

/**
 * Extends a token key only while we hold it.
 * KEYS: key. ARGV: token, ttlMs. Returns 1 refreshed, 0 absent, -1 held by another token.
 */
export const TOKEN_REFRESH = new LuaScript(
  'tokenRefresh',
  `${MEMBERSHIP}
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`,
  1,
);

/** Deletes a token key only while we hold it. KEYS: key. ARGV: token. Returns 1 when deleted. */
export const TOKEN_RELEASE = new LuaScript(
  'tokenRelease',
  `${MEMBERSHIP}
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
  1,
);

/** LIVENESS_ACQUIRE results. */
export const LEASE_TAKEN = 1;
export const LEASE_RESUMED = 2;
export const LEASE_TAKEN_OVER = 3;
export const LEASE_HELD_ELSEWHERE = 0;

/**
 * Takes (or takes back) a node's liveness key, with the fencing record beside it.
 * KEYS: alive, holder. ARGV: token, ttlMs, holderTtlMs, mode ('fresh': a new process or a new
 * incarnation; 'resume': take back a key that lapsed, only if nobody took the node over).
 * Returns { LEASE_TAKEN | LEASE_RESUMED | LEASE_TAKEN_OVER, 0 } or { LEASE_HELD_ELSEWHERE, pttl }.
 */
export const LIVENESS_ACQUIRE = new LuaScript(
  'livenessAcquire',
  `${MEMBERSHIP}
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return { 0, redis.call('PTTL', KEYS[1]) } end
if ARGV[4] == 'resume' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[1] then return { 3, 0 } end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
if ARGV[4] == 'resume' then return { 2, 0 } end
return { 1, 0 }
`,
  2,
);

/**
 * The liveness heartbeat: extends the node's liveness key while we hold it, and with it the
 * fencing record, the node's inbox, owned set and replies stream (so an idle node keeps its
 * consumer groups); writes the node's inbox cap again (so a Redis that lost it learns it within one
 * beat); keeps the inbox's packed count (INBOX_APPEND_PACKING) in existence, 0 when missing: a script that
 * names a missing key beside existing ones gets TRYAGAIN for as long as its slot migrates.
 * KEYS: alive, stream, owned, replies, cap, holder, packed. ARGV: token, ttlMs, streamTtlMs, ownedTtlMs, inboxCap, holderTtlMs.
 * Returns 1 refreshed, 0 absent (lapsed or Redis lost it), -1 held by another process.
 */
export const LIVENESS_REFRESH = new LuaScript(
  'livenessRefresh',
  `${MEMBERSHIP}
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[3])
redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[6])
if redis.call('PEXPIRE', KEYS[7], ARGV[3]) == 0 then redis.call('SET', KEYS[7], 0, 'PX', ARGV[3]) end
return 1
`,
  7,
);

/**
 * Before a survivor answers anything of a dead node's inbox: marks the node taken over, but
 * only while its liveness key is absent. A process of that node taking its key back afterwards
 * then learns it was taken over (LIVENESS_ACQUIRE 'resume' → LEASE_TAKEN_OVER) and never sends
 * what it had read. KEYS: alive, holder. ARGV: marker, holderTtlMs. Returns 1 marked, 0 alive.
 */
export const TAKEOVER_FENCE = new LuaScript(
  'takeoverFence',
  `${MEMBERSHIP}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`,
  2,
);

/** Clean leave: deletes the liveness key and the fencing record while they are ours. KEYS: alive, holder. ARGV: token. */
export const LIVENESS_RELEASE = new LuaScript(
  'livenessRelease',
  `${MEMBERSHIP}
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  return 1
end
return 0
`,
  2,
);

/**
 * Last step of a takeover (and of a clean leave): deletes a dead node's inbox, owned set and
 * replies stream, but only while the node is still dead and its inbox holds nothing undelivered
 * or unacknowledged. Its replies are not waited for: the calls they answer died with the node.
 * KEYS: alive, stream, owned, replies, cap, packed. ARGV: group.
 * Returns 1 deleted, 0 the node is alive again, -1 entries remain (drain again).
 */
export const NODE_CLEANUP = new LuaScript(
  'nodeCleanup',
  `${MEMBERSHIP}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local function id_after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  local has_group = false
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    if info['name'] == ARGV[1] then
      has_group = true
      if tonumber(info['pending']) > 0 then return -1 end
      if newest and id_after(newest[1], info['last-delivered-id']) then return -1 end
    end
  end
  if newest and not has_group then return -1 end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 1
`,
  6,
);

/**
 * Appends commands to a node's inbox, with backpressure instead of trimming: when the inbox
 * already holds its cap of commands not yet handled (undelivered: the group's lag; delivered but
 * unacknowledged: its pending count; plus the commands packed beyond the first into those
 * entries, the `packed` key), nothing more is appended and the refusal is returned, so the caller
 * learns at once that nothing was sent. The cap is the owner's (its heartbeat writes it), the
 * writer's own only while the owner's is unknown. One run takes several requests (the appends of
 * one turn of the event loop to this inbox), each admitted or refused whole, in order, exactly as
 * one run each would: a request is admitted while the inbox holds fewer than its cap, so the cap
 * may be passed by one request. The admitted messages are packed in order into entries of at most
 * `packCount` messages and `packChars` characters (a JSON array; one message alone stays a plain
 * entry; `packCount` 1 for an owner that does not read packed entries), and each packed entry adds
 * its messages but one to `packed` (the reader takes them off when it acknowledges the entry, see
 * INBOX_ACK). `packed` is only trusted within [0, entries x (PACK_MAX_COUNT - 1)] and is reset when
 * nothing is left unhandled, so an acknowledgement that did not count (an older reader, an entry
 * deleted unread) is forgotten once the inbox drains. Nothing is ever trimmed here (an entry
 * trimmed unread would be a command lost without a word); the reader trims what it acknowledged.
 * Renews the stream's TTL when it appended. Lean on purpose (no table per group, XINFO only for a
 * non-empty inbox).
 * KEYS: stream, cap, packed. ARGV: group, fallbackCap, ttlMs, the requests' message counts joined
 * by commas, every message's JSON in order joined by newlines (two arguments however many
 * commands: ioredis spent more per argument than Redis did per command), packCount, packChars.
 * Returns { cap, then per request: 1, id... (a message's entry id) when appended, 0, queued when refused }.
 * (The Lua of INBOX_APPEND_PACKING and, without the packed key, of INBOX_APPEND.)
 */
const INBOX_APPEND_LUA = `
local cap = tonumber(redis.call('GET', KEYS[2]) or ARGV[2])
-- Before the owner created its group (or without a lag: deletions in the unread range) every
-- entry counts as unhandled.
local queued = redis.call('XLEN', KEYS[1])
if queued > 0 then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
  for g = 1, #groups do
    local group, name, lag, pending = groups[g], nil, nil, nil
    for i = 1, #group, 2 do
      local field = group[i]
      if field == 'name' then name = group[i + 1] elseif field == 'lag' then lag = group[i + 1] elseif field == 'pending' then pending = group[i + 1] end
    end
    if name == ARGV[1] and lag then queued = lag + pending end
  end
end
if KEYS[3] then
  local packed = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if queued == 0 then
    if packed ~= 0 then redis.call('SET', KEYS[3], 0, 'KEEPTTL') end
  else
    queued = queued + math.max(0, math.min(packed, queued * ${PACK_MAX_COUNT - 1}))
  end
end
local out = { cap }
local appended = false
local messages, at = ARGV[5], 1
-- The next message of ARGV[5] (JSON never holds a raw newline: it escapes them).
local function nextMessage()
  local stop = string.find(messages, '\\n', at, true)
  local message
  if stop then message = string.sub(messages, at, stop - 1); at = stop + 1 else message = string.sub(messages, at); at = #messages + 1 end
  return message
end
local packCount, packChars = 1, 0
if KEYS[3] then packCount, packChars = tonumber(ARGV[6]), tonumber(ARGV[7]) end
local pack, chars, slots, added = {}, 0, {}, 0
local function flush()
  if #pack == 0 then return end
  local value = pack[1]
  if #pack > 1 then value = '[' .. table.concat(pack, ',') .. ']'; added = added + #pack - 1 end
  local id = redis.call('XADD', KEYS[1], '*', '${MESSAGE_FIELD}', value)
  for i = 1, #slots do out[slots[i]] = id end
  pack, chars, slots = {}, 0, {}
end
for field in string.gmatch(ARGV[4], '%d+') do
  local count = tonumber(field)
  if queued >= cap then
    out[#out + 1] = 0
    out[#out + 1] = queued
    for _ = 1, count do nextMessage() end
  else
    out[#out + 1] = 1
    for _ = 1, count do
      local message = nextMessage()
      if #pack >= packCount or (#pack > 0 and chars + #message > packChars) then flush() end
      pack[#pack + 1] = message
      chars = chars + #message
      out[#out + 1] = false
      slots[#slots + 1] = #out
    end
    queued = queued + count
    appended = true
  end
end
flush()
if added > 0 then
  redis.call('INCRBY', KEYS[3], added)
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
if appended then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return out
`;

/**
 * Appends commands to a node's inbox with backpressure (see INBOX_APPEND_PACKING), one entry per
 * command, for an owner not known to read packed entries. It leaves the packed count out of the
 * cap: naming a key that node may not have would make every append TRYAGAIN while its slot migrates.
 * KEYS: stream, cap. ARGV: group, fallbackCap, ttlMs, counts, messages.
 */
export const INBOX_APPEND = new LuaScript('inboxAppend', INBOX_APPEND_LUA, 2);

export const INBOX_APPEND_PACKING = new LuaScript('inboxAppendPacking', INBOX_APPEND_LUA, 3);

/**
 * Acknowledges inbox entries and takes the commands packed beyond the first in each off the
 * inbox's `packed` count (see INBOX_APPEND_PACKING), only for entries this XACK really acknowledged (an
 * entry acknowledged twice, by a takeover and its node, counts once).
 * KEYS: stream, packed. ARGV: group, then per entry its id and its messages but one.
 * Returns how many entries were acknowledged.
 */
export const INBOX_ACK = new LuaScript(
  'inboxAck',
  `
local acked, unpacked = 0, 0
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    acked = acked + 1
    unpacked = unpacked + tonumber(ARGV[i + 1])
  end
end
if unpacked > 0 and redis.call('DECRBY', KEYS[2], unpacked) < 0 then redis.call('SET', KEYS[2], 0, 'KEEPTTL') end
return acked
`,
  2,
);

/** SET key value PX ttl, as membership (see MEMBERSHIP). KEYS: key. ARGV: value, ttlMs. */
export const MEMBERSHIP_SET = new LuaScript(
  'membershipSet',
  `${MEMBERSHIP}
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
`,
  1,
);

/** SADD key members..., as membership (see MEMBERSHIP). KEYS: key. ARGV: members. */
export const MEMBERSHIP_SADD = new LuaScript(
  'membershipSadd',
  `${MEMBERSHIP}
return redis.call('SADD', KEYS[1], unpack(ARGV))
`,
  1,
);

/** ZADD key score member, as membership (see MEMBERSHIP). KEYS: key. ARGV: score, member. */
export const MEMBERSHIP_ZADD = new LuaScript(
  'membershipZadd',
  `${MEMBERSHIP}
return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
`,
  1,
);
