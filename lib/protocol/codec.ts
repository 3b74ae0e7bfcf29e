/**
 * Parses and builds OCPP-J frames. `parseFrame` never throws: bad input yields a typed
 * problem with the answer the spec asks for (PROTOCOL.md, "Answering bad input").
 *
 * Decisions where the spec leaves room:
 * - Only frames whose type cannot be told (unparseable JSON, not an array, a type id that is
 *   not an integer) and CALLs are ever answered. A CALLRESULT, CALLERROR, CALLRESULTERROR or
 *   SEND with a bad shape (even an unreadable id) is reported with `reply: null`: the spec
 *   forbids answering those types.
 * - 1.6 has no RpcFrameworkError; a frame that is not a valid RPC frame is answered with
 *   FormationViolation ("not conform the PDU structure"), the closest 1.6 code.
 * - A CALL whose id is longer than 36 characters is answered with that id (it was readable,
 *   so echoing it lets the station correlate; the answer is never bigger than the frame).
 * - A CALLERROR/CALLRESULTERROR may omit errorDetails (or send null), and may omit
 *   errorDescription: real stations do, and the pending call is better failed with the
 *   station's code than left to time out. They become `{}` and `''`.
 * - `reason` is one of a few fixed strings (safe as a metrics label); it never quotes input.
 */
import { normalizeErrorCode } from './error-codes.js';
import { MessageType } from './message-type.js';
import { isOcpp2, type OcppProtocol } from './protocol.js';

export const MAX_MESSAGE_ID_LENGTH = 36;
/** 2.x limit on errorDescription (OCPP-J 2.0.1 Part 4, CALLERROR). */
export const MAX_ERROR_DESCRIPTION_LENGTH = 255;

export type ParsedFrame =
  | { type: MessageType.CALL; id: string; action: string; payload: Record<string, unknown> }
  | { type: MessageType.CALLRESULT; id: string; payload: Record<string, unknown> }
  | {
      type: MessageType.CALLERROR | MessageType.CALLRESULTERROR;
      id: string;
      errorCode: string;
      errorDescription: string;
      errorDetails: Record<string, unknown>;
    }
  | { type: MessageType.SEND; id: string; action: string; payload: Record<string, unknown> };

export type ParseOutcome =
  | { ok: true; frame: ParsedFrame }
  /** `reply`: an encoded CALLERROR to send back, or null to ignore the frame silently. */
  | { ok: false; reason: string; reply: string | null };

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The code for "this is not a valid RPC frame" in `protocol`. */
function frameworkCode(protocol: OcppProtocol): string {
  return protocol === 'ocpp1.6' ? 'FormationViolation' : 'RpcFrameworkError';
}

function rejectFrame(protocol: OcppProtocol, id: string, reason: string, description: string): ParseOutcome {
  return { ok: false, reason, reply: encodeCallError(protocol, id, frameworkCode(protocol), description, {}) };
}

function ignore(reason: string): ParseOutcome {
  return { ok: false, reason, reply: null };
}

export function parseFrame(raw: string, protocol: OcppProtocol): ParseOutcome {
  let msg: unknown;
  try {
    msg = JSON.parse(raw);
  } catch {
    return rejectFrame(protocol, '-1', 'invalid JSON', 'Message is not valid JSON');
  }
  if (!Array.isArray(msg)) {
    return rejectFrame(protocol, '-1', 'not an array', 'Message is not a JSON array');
  }
  switch (msg[0]) {
    case MessageType.CALL:
      return parseCall(msg, protocol);
    case MessageType.CALLRESULT:
      return parseCallResult(msg);
    case MessageType.CALLERROR:
      return parseCallError(msg, MessageType.CALLERROR);
    case MessageType.CALLRESULTERROR:
      return protocol === 'ocpp2.1' ? parseCallError(msg, MessageType.CALLRESULTERROR) : unknownType(msg, protocol);
    case MessageType.SEND:
      return protocol === 'ocpp2.1' ? parseSend(msg) : unknownType(msg, protocol);
  }
  if (!Number.isInteger(msg[0])) {
    return rejectFrame(protocol, '-1', 'invalid message type id', 'Message type id is not an integer');
  }
  return unknownType(msg, protocol);
}

function unknownType(msg: unknown[], protocol: OcppProtocol): ParseOutcome {
  // Only 2.0.1 answers; 1.6 and 2.1 ignore unknown types.
  if (protocol !== 'ocpp2.0.1') return ignore('unknown message type');
  const id = typeof msg[1] === 'string' ? msg[1] : '-1';
  return {
    ok: false,
    reason: 'unknown message type',
    reply: encodeCallError(protocol, id, 'MessageTypeNotSupported', 'Message type not supported', {}),
  };
}

function parseCall(msg: unknown[], protocol: OcppProtocol): ParseOutcome {
  const id = msg[1];
  if (typeof id !== 'string') {
    return rejectFrame(protocol, '-1', 'unreadable message id', 'Message id is not a string');
  }
  if (id.length > MAX_MESSAGE_ID_LENGTH) {
    return rejectFrame(protocol, id, 'message id too long', 'Message id is longer than 36 characters');
  }
  if (msg.length !== 4) {
    return rejectFrame(protocol, id, 'malformed CALL', 'CALL must have exactly 4 elements');
  }
  const action = msg[2];
  if (typeof action !== 'string' || action.length === 0) {
    return rejectFrame(protocol, id, 'malformed CALL', 'Action is not a non-empty string');
  }
  const payload = msg[3];
  if (!isJsonObject(payload)) {
    return {
      ok: false,
      reason: 'CALL payload not an object',
      reply: encodeCallError(protocol, id, 'FormatViolation', 'Payload is not a JSON object', {}),
    };
  }
  return { ok: true, frame: { type: MessageType.CALL, id, action, payload } };
}

function isReplyId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_MESSAGE_ID_LENGTH;
}

function parseCallResult(msg: unknown[]): ParseOutcome {
  const id = msg[1];
  const payload = msg[2];
  if (msg.length !== 3 || !isReplyId(id) || !isJsonObject(payload)) return ignore('malformed CALLRESULT');
  return { ok: true, frame: { type: MessageType.CALLRESULT, id, payload } };
}

function parseCallError(
  msg: unknown[],
  type: MessageType.CALLERROR | MessageType.CALLRESULTERROR,
): ParseOutcome {
  const id = msg[1];
  const errorCode = msg[2];
  const description = msg[3];
  const details = msg[4];
  if (
    msg.length < 3 ||
    msg.length > 5 ||
    !isReplyId(id) ||
    typeof errorCode !== 'string' ||
    (description !== undefined && typeof description !== 'string') ||
    (details !== undefined && details !== null && !isJsonObject(details))
  ) {
    return ignore(type === MessageType.CALLERROR ? 'malformed CALLERROR' : 'malformed CALLRESULTERROR');
  }
  return {
    ok: true,
    frame: {
      type,
      id,
      errorCode,
      errorDescription: description ?? '',
      errorDetails: isJsonObject(details) ? details : {},
    },
  };
}

function parseSend(msg: unknown[]): ParseOutcome {
  const id = msg[1];
  const action = msg[2];
  const payload = msg[3];
  if (
    msg.length !== 4 ||
    !isReplyId(id) ||
    typeof action !== 'string' ||
    action.length === 0 ||
    !isJsonObject(payload)
  ) {
    return ignore('malformed SEND');
  }
  return { ok: true, frame: { type: MessageType.SEND, id, action, payload } };
}

export function encodeCall(id: string, action: string, payload: Record<string, unknown>): string {
  return JSON.stringify([MessageType.CALL, id, action, payload]);
}

export function encodeCallResult(id: string, payload: Record<string, unknown>): string {
  return JSON.stringify([MessageType.CALLRESULT, id, payload]);
}

/** Cuts to `max` UTF-16 units without leaving half a surrogate pair at the end. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

function errorFrame(
  type: MessageType.CALLERROR | MessageType.CALLRESULTERROR,
  protocol: OcppProtocol,
  id: string,
  errorCode: string,
  description: string | undefined,
  details: Record<string, unknown> | undefined,
): string {
  let text = typeof description === 'string' ? description : '';
  if (isOcpp2(protocol)) text = truncate(text, MAX_ERROR_DESCRIPTION_LENGTH);
  return JSON.stringify([type, id, normalizeErrorCode(protocol, errorCode), text, isJsonObject(details) ? details : {}]);
}

/**
 * A CALLERROR in `protocol`'s spelling of `errorCode` (unknown codes become GenericError).
 * 2.x: the description is cut to 255 characters. Missing details become `{}`.
 */
export function encodeCallError(
  protocol: OcppProtocol,
  id: string,
  errorCode: string,
  description?: string,
  details?: Record<string, unknown>,
): string {
  return errorFrame(MessageType.CALLERROR, protocol, id, errorCode, description, details);
}

/** OCPP 2.1 only: an error about a CALLRESULT we received. */
export function encodeCallResultError(
  id: string,
  errorCode: string,
  description?: string,
  details?: Record<string, unknown>,
): string {
  return errorFrame(MessageType.CALLRESULTERROR, 'ocpp2.1', id, errorCode, description, details);
}

/** OCPP 2.1 only: a SEND, which is never answered. */
export function encodeSend(id: string, action: string, payload: Record<string, unknown>): string {
  return JSON.stringify([MessageType.SEND, id, action, payload]);
}
