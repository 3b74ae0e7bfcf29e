/**
 * HTTP Basic credentials as OCPP security profiles 1 and 2 use them: the username is the charge
 * point identity, the password is kept as raw bytes because OCPP 1.6 passwords are binary
 * (16–20 bytes, configured as hex) and need not be valid UTF-8.
 */
export interface BasicCredentials {
  username: string;
  password: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses an `Authorization` header value; null when absent, not Basic, or malformed. */
export function parseBasicAuth(header: string | undefined): BasicCredentials | null {
  if (header === undefined) return null;
  const match = /^basic[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match || !BASE64.test(match[1]) || match[1].length % 4 === 1) return null;
  const decoded = Buffer.from(match[1], 'base64');
  const colon = decoded.indexOf(0x3a);
  if (colon === -1) return null;
  let username: string;
  try {
    username = utf8.decode(decoded.subarray(0, colon));
  } catch {
    return null;
  }
  // A copy, so the password does not keep the whole decoded header alive.
  return { username, password: Buffer.from(decoded.subarray(colon + 1)) };
}

/**
 * The Basic auth password of `identity`, or undefined when the request carries no Basic
 * credentials or they name someone else: a password is only ever checked against the
 * identity in the URL.
 */
export function basicAuthPasswordFor(header: string | undefined, identity: string): Buffer | undefined {
  const credentials = parseBasicAuth(header);
  return credentials !== null && credentials.username === identity ? credentials.password : undefined;
}
