/**
 * The frame hook (audit log): every OCPP-J frame a node reads from or writes to a charge point,
 * handed to the application after an optional redaction. Off by default; when off the session
 * only tests one field per frame (no closure, no parse, no allocation).
 */
import type { OcppProtocol } from './protocol.js';

export type FrameDirection = 'in' | 'out';

/** One frame as the `onFrame` hook receives it. */
export interface OcppFrameRecord {
  /** 'in': from the charge point; 'out': written to it. */
  direction: FrameDirection;
  identity: string;
  protocol: OcppProtocol;
  /** The node holding the socket. */
  nodeId: string;
  /** The frame's text (re-encoded from `message` when the redactor changed it). */
  raw: string;
  /** The parsed OCPP-J array, when the text is a JSON array; undefined for a malformed frame. */
  message?: unknown[];
  /** Epoch ms when the frame was read or written. */
  at: number;
}

/**
 * Returns the record to hand out (a new one, or the same): e.g. with idTags and passwords
 * replaced. It runs before `onFrame`, so nothing unredacted leaves the library.
 */
export type FrameRedactor = (record: OcppFrameRecord) => OcppFrameRecord;

export interface FrameLogOptions {
  /** Called once per frame, synchronously and in order; an error it throws is logged, never surfaced to the charger. */
  onFrame(record: OcppFrameRecord): void;
  /** E.g. `redactSecrets` (exported); default: none. */
  redact?: FrameRedactor;
}

/** What the session calls per frame (built by {@link frameObserver}); null = frame log off. */
export type FrameObserver = (direction: FrameDirection, raw: string) => void;

export const REDACTED = '***';

/** Keys whose string value is a credential or a personal token wherever they appear. */
const SECRET_KEYS = new Set(['idTag', 'parentIdTag', 'password', 'basicAuthPassword', 'authorizationKey']);
/** Objects whose `idToken`/`groupIdToken` value is an IdTokenType (2.x) or a string. */
const TOKEN_KEYS = new Set(['idToken', 'groupIdToken']);
/** Configuration keys (1.6) and variable names (2.x) that hold secrets. */
const SECRET_SETTING = /password|authorizationkey|secret|privatekey/i;

function redactValue(value: unknown, key: string | null): unknown {
  if (key !== null && SECRET_KEYS.has(key) && typeof value === 'string') return REDACTED;
  if (key !== null && TOKEN_KEYS.has(key)) {
    if (typeof value === 'string') return REDACTED;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      return { ...redactObject(value as Record<string, unknown>), idToken: REDACTED };
    }
  }
  if (Array.isArray(value)) return value.map((item) => redactValue(item, null));
  if (value !== null && typeof value === 'object') return redactObject(value as Record<string, unknown>);
  return value;
}

function redactObject(object: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) copy[key] = redactValue(value, key);
  // 1.6 ChangeConfiguration / GetConfiguration: { key, value } of a secret setting.
  if (typeof object.key === 'string' && SECRET_SETTING.test(object.key) && 'value' in object) copy.value = REDACTED;
  // 2.x SetVariables / GetVariables / NotifyReport: { variable: { name }, attributeValue } of a secret variable.
  const variable = object.variable as { name?: unknown } | undefined;
  if (variable !== null && typeof variable === 'object' && typeof variable.name === 'string' && SECRET_SETTING.test(variable.name)) {
    if ('attributeValue' in object) copy.attributeValue = REDACTED;
    if ('variableAttribute' in object && Array.isArray(object.variableAttribute)) {
      copy.variableAttribute = (object.variableAttribute as unknown[]).map((attribute) =>
        attribute !== null && typeof attribute === 'object' && 'value' in attribute ? { ...attribute, value: REDACTED } : attribute,
      );
    }
  }
  return copy;
}

/** For frames that are not JSON: the same secret keys, found textually. */
const SECRET_TEXT = /("(?:idTag|parentIdTag|password|basicAuthPassword|authorizationKey|idToken)"\s*:\s*)"(?:[^"\\]|\\.)*"/g;

/**
 * The default redactor (opt in: `frameLog: { onFrame, redact: redactSecrets }`): replaces with
 * "***" idTag/parentIdTag (1.6), idToken/groupIdToken values (2.x), any `password`, and the value
 * of configuration keys / variables whose name says password, AuthorizationKey, secret or private
 * key (ChangeConfiguration, GetConfiguration, SetVariables, GetVariables, NotifyReport).
 */
export const redactSecrets: FrameRedactor = (record) => {
  if (record.message === undefined) {
    const raw = record.raw.replace(SECRET_TEXT, `$1"${REDACTED}"`);
    return raw === record.raw ? record : { ...record, raw };
  }
  const message = record.message.map((part) => redactValue(part, null));
  return { ...record, message, raw: JSON.stringify(message) };
};

export interface FrameLogLogger {
  error(message: string): void;
}

/**
 * The per-connection observer for the session: parses, redacts and hands out each frame; the
 * hook's own failures are logged, so a broken audit sink never breaks a charger's session.
 */
export function frameObserver(
  options: FrameLogOptions,
  context: { identity: string; protocol: OcppProtocol; nodeId: string },
  logger: FrameLogLogger,
): FrameObserver {
  return (direction, raw) => {
    try {
      let record: OcppFrameRecord = { direction, ...context, raw, message: parseArray(raw), at: Date.now() };
      if (options.redact !== undefined) record = options.redact(record);
      options.onFrame(record);
    } catch (err) {
      logger.error(`${context.identity}: frame log hook failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

function parseArray(raw: string): unknown[] | undefined {
  try {
    const value: unknown = JSON.parse(raw);
    return Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
