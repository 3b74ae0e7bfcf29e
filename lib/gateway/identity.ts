/**
 * Charge point identity in the URL path of the WebSocket handshake (the rules for the identity
 * itself are protocol/identity.ts).
 */
export { DEFAULT_MAX_IDENTITY_LENGTH, validateIdentity } from '../protocol/identity.js';
export type { IdentityRules } from '../protocol/identity.js';

/** Result of {@link identityFromPath} for a path that belongs to the endpoint. */
export type PathIdentity = { ok: true; identity: string } | { ok: false; reason: string };

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
