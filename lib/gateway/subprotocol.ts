import type { OcppProtocol } from '../protocol/protocol.js';

// RFC 7230 tchar: what a subprotocol token may contain.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The subprotocols offered in a `Sec-WebSocket-Protocol` header value, in the client's order.
 * Absent header → []. Null when the value is malformed (empty element, non-token character,
 * duplicate), which `ws` would refuse with 400 as well.
 */
export function parseSubprotocols(header: string | undefined): string[] | null {
  if (header === undefined) return [];
  // A Set for the duplicate check: this runs before authentication, and a search of the list per
  // token made a 16 KB header of 5,000 tokens cost quadratic time.
  const offered = new Set<string>();
  for (const part of header.split(',')) {
    const token = part.trim();
    if (!TOKEN.test(token) || offered.has(token)) return null;
    offered.add(token);
  }
  return [...offered];
}

/**
 * The first protocol in the client's preference order that we support (OCPP-J: the client's
 * order decides, not ours), or null when none matches.
 */
export function negotiateSubprotocol(offered: readonly string[], supported: readonly OcppProtocol[]): OcppProtocol | null {
  for (const protocol of offered) {
    if ((supported as readonly string[]).includes(protocol)) return protocol as OcppProtocol;
  }
  return null;
}
