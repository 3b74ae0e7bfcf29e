/**
 * Charge point identity rules: what an identity may be wherever it comes from (a handshake's URL
 * path, a caller of the public API), checked before it reaches logs, presence keys or routes.
 */

export const DEFAULT_MAX_IDENTITY_LENGTH = 48;

export interface IdentityRules {
  /** In characters (code points). OCPP 2.x allows 48. */
  maxLength?: number;
  /** An extra, site-specific rule the identity must match (tested on the decoded identity). */
  pattern?: RegExp;
}

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
