import { readFileSync } from 'node:fs';
import type { AuthenticationRequest, AuthenticationResult } from '../lib/index.js';
import { sameSecret } from './constant-time.js';
import { InvalidEnvironmentError } from './environment.js';

/** Compared against when the identity is unknown, so that case costs the same time. */
const UNKNOWN_IDENTITY_SECRET = Buffer.alloc(32);

/**
 * Reads `identity:password` lines (OCPP security profile 1/2 Basic auth). The identity is the
 * Basic-auth user, which cannot contain ":" (RFC 7617), so the line splits at the first one and
 * the password is the rest, as UTF-8 bytes. Blank lines and lines starting with "#" are skipped.
 */
export function loadChargerPasswords(file: string, variable = 'OCPP_PASSWORDS_FILE'): Map<string, Buffer> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidEnvironmentError(variable, `names a file that cannot be read (${(error as Error).message})`);
  }
  const passwords = new Map<string, Buffer>();
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    const identity = colon === -1 ? '' : line.slice(0, colon);
    const password = colon === -1 ? '' : line.slice(colon + 1);
    const where = `${file} line ${index + 1}`;
    if (identity === '' || password === '') throw new InvalidEnvironmentError(variable, `${where}: expected identity:password`);
    if (passwords.has(identity)) throw new InvalidEnvironmentError(variable, `${where}: ${identity} is listed twice`);
    passwords.set(identity, Buffer.from(password, 'utf8'));
  });
  return passwords;
}

/**
 * An `authenticate` hook: a charge point must send HTTP Basic auth with its identity as the user
 * and its password from the file; anything else gets 401 before the upgrade.
 */
export function passwordAuthenticator(passwords: ReadonlyMap<string, Buffer>): (request: AuthenticationRequest) => AuthenticationResult {
  return ({ identity, password }) => {
    const expected = passwords.get(identity);
    // Always one comparison, whether the identity or the password is missing or not.
    const matches = sameSecret(password ?? Buffer.alloc(0), expected ?? UNKNOWN_IDENTITY_SECRET);
    return matches && expected !== undefined && password !== undefined ? true : { accept: false, status: 401 };
  };
}
