import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (secret: Buffer | string): Buffer => createHash('sha256').update(secret).digest();

/**
 * Whether two secrets are equal, in time that depends on neither: both are hashed first, so
 * the comparison does not even reveal the expected length.
 */
export function sameSecret(presented: Buffer | string, expected: Buffer | string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}
