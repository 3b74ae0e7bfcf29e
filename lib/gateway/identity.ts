/**
 * Charge point identity: taken from the URL path of the WebSocket handshake and checked before
 * it reaches anything else (logs, presence keys in Redis, REST routes).
 */

export const DEFAULT_MAX_IDENTITY_LENGTH = 48;

export interface IdentityRules {
  /** In characters (code points). OCPP 2.x allows 48. */
  maxLength?: number;
  /** An extra, site-specific rule the identity must match (tested on the decoded identity). */
  pattern?: RegExp;
}

/** Result of {@link identityFromPath} for a path that belongs to the endpoint. */
export type PathIdentity = { ok: true; identity: string } | { ok: false; reason: string };

/*
 * Refused characters and why:
 * - control (Cc: C0, DEL, C1) and format characters (Cf: zero-width, bidi overrides): they
 *   forge log lines and make two identities that print the same;
 * - any whitespace or separator (Z, \s);
 * - ":" (OCPP 2.x forbids it: it would end the Basic auth username);
 * - "{" "}" (Redis Cluster hash tags), "*" "?" "[" "]" "\" (Redis glob patterns in SCAN/KEYS);
 * - "/" (a decoded %2F): the identity must stay one path segment in our REST routes and in
 *   proxies that decode before routing.
 */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Z}\s:{}*?[\]\\/]/u;

/**
 * The raw path of a request target, before any decoding or dot-segment normalisation: query
 * and fragment dropped; an absolute-form target ("http://host/ocpp/CP1") reduced to its path.
 */
export function rawPathname(url: string): string {
  let end = url.length;
  const query = url.indexOf('?');
  if (query !== -1) end = query;
  const hash = url.indexOf('#');
  if (hash !== -1 && hash < end) end = hash;
  let path = url.slice(0, end);
  if (!path.startsWith('/')) {
    const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
    path = authority ? path.slice(authority[0].length) || '/' : path;
  }
  return path;
}

/**
 * Normalises an endpoint path option: "/ocpp/" → "/ocpp", "/" → "". Returns null when the
 * path is not a plain absolute path (no query, fragment, percent-encoding or empty segments).
 */
export function normalizeBasePath(path: string): string | null {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '') return path.startsWith('/') ? '' : null;
  return /^(\/[A-Za-z0-9._~!$&'()*+,;=@-]+)+$/.test(trimmed) ? trimmed : null;
}

/**
 * The identity addressed by `pathname` under `basePath` (already normalised, see
 * {@link normalizeBasePath}). The path must be exactly `basePath + "/" + segment`: the raw path
 * is split before percent-decoding, so an encoded "/" never creates a segment. Returns null when
 * the path is not this endpoint's (wrong base, no identity segment, trailing slash, more
 * segments): the caller answers 404. A segment that does not decode gives `ok: false` (400).
 * The decoded identity still has to pass {@link validateIdentity}.
 */
export function identityFromPath(pathname: string, basePath: string): PathIdentity | null {
  const prefix = `${basePath}/`;
  if (!pathname.startsWith(prefix)) return null;
  const segment = pathname.slice(prefix.length);
  if (segment.includes('/')) return null;
  if (!segment.includes('%')) return { ok: true, identity: segment };
  try {
    return { ok: true, identity: decodeURIComponent(segment) };
  } catch {
    return { ok: false, reason: 'bad percent-encoding' };
  }
}

/** Null when `identity` is acceptable, otherwise the reason it is not. */
export function validateIdentity(identity: string, rules: IdentityRules = {}): string | null {
  const maxLength = rules.maxLength ?? DEFAULT_MAX_IDENTITY_LENGTH;
  if (identity.length === 0) return 'empty identity';
  // Code points, not UTF-16 units: "é" counts once, an emoji once.
  let length = 0;
  for (const _ of identity) {
    if (++length > maxLength) return `identity longer than ${maxLength} characters`;
  }
  const bad = FORBIDDEN.exec(identity);
  if (bad) {
    const code = bad[0].codePointAt(0) ?? 0;
    const shown = code > 0x20 && code < 0x7f ? `"${bad[0]}"` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    return `identity contains a forbidden character ${shown}`;
  }
  if (identity === '.' || identity === '..') return 'identity is a dot segment';
  if (rules.pattern) {
    rules.pattern.lastIndex = 0; // a /g or /y pattern would otherwise remember the last match
    if (!rules.pattern.test(identity)) return 'identity does not match the configured pattern';
  }
  return null;
}
