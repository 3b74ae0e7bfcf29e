import type { ParkedCommand, ParkedCommandStore } from '../cluster/parked-command.js';
import { MAX_PARKED_PER_CHARGER } from '../cluster/parked-command.js';
import { QueueFullError } from '../protocol/errors.js';
import { LuaScript } from './lua-scripts.js';
import type { RedisClient } from './redis-driver.js';
import type { RedisKeys } from './redis-keys.js';

/**
 * Commands parked for offline charge points, one Redis list per identity
 * (`<prefix>{p:<identity>}:parked`, the presence slot). Each item is `<deliverBy>|<id>|<json>`,
 * so the scripts read the window and the id without decoding JSON. Taking and withdrawing are
 * scripts on the one key: whichever runs first wins, the other finds nothing.
 */

// An item whose window ended stays until its caller withdraws it (that answers NotDelivered) or
// the key's TTL ends: a caller that died leaves it to expire.
const PARK = new LuaScript(
  'parkCommand',
  `
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`,
  1,
);

const TAKE_DUE = new LuaScript(
  'takeDueParked',
  `
local now = tonumber(ARGV[1])
local taken = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local by = tonumber(string.match(item, '^(%d+)|'))
  if by and by > now then taken[#taken + 1] = item end
end
for _, item in ipairs(taken) do redis.call('LREM', KEYS[1], 1, item) end
return taken
`,
  1,
);

const WITHDRAW = new LuaScript(
  'withdrawParked',
  `
local marker = ARGV[1]
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local bar = string.find(item, '|', 1, true)
  if bar and string.sub(item, bar, bar + #marker - 1) == marker then
    redis.call('LREM', KEYS[1], 1, item)
    return 1
  end
end
return 0
`,
  1,
);

/** How long a parked list outlives the last window in it: a withdrawing caller is never late to it. */
const KEEP_AFTER_WINDOW_MS = 60_000;

export class RedisParkedCommandStore implements ParkedCommandStore {
  constructor(
    private readonly keys: RedisKeys,
    private readonly clientFor: (key: string) => RedisClient,
    private readonly unavailable: (error: unknown) => Error,
  ) {}

  async park(identity: string, entry: ParkedCommand): Promise<void> {
    const key = this.keys.parked(identity);
    const item = `${Math.floor(entry.deliverBy)}|${entry.command.id}|${JSON.stringify(entry)}`;
    const ttlMs = Math.max(1, entry.command.deadline - Date.now()) + KEEP_AFTER_WINDOW_MS;
    const added = await this.run(PARK, key, [item, MAX_PARKED_PER_CHARGER, ttlMs]);
    if (Number(added) === -1) throw new QueueFullError(identity, MAX_PARKED_PER_CHARGER);
  }

  async takeDue(identity: string, now: number): Promise<ParkedCommand[]> {
    const items = (await this.run(TAKE_DUE, this.keys.parked(identity), [Math.floor(now)])) as unknown[];
    return (Array.isArray(items) ? items : []).map((item) => decodeItem(String(item)));
  }

  async withdraw(identity: string, commandId: string): Promise<boolean> {
    return Number(await this.run(WITHDRAW, this.keys.parked(identity), [`|${commandId}|`])) === 1;
  }

  private async run(script: LuaScript, key: string, args: (string | number)[]): Promise<unknown> {
    try {
      return await script.run(this.clientFor(key), [key], args);
    } catch (error) {
      throw this.unavailable(error);
    }
  }
}

function decodeItem(item: string): ParkedCommand {
  const json = item.slice(item.indexOf('|', item.indexOf('|') + 1) + 1);
  return JSON.parse(json) as ParkedCommand;
}
