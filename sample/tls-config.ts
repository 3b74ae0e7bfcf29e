import { readFileSync } from 'node:fs';
import { certificateAuthenticator } from '../lib/index.js';
import type { OcppClusterOptions } from '../lib/index.js';
import { InvalidEnvironmentError, integerFromEnv } from './environment.js';

function readEnvFile(env: NodeJS.ProcessEnv, variable: string): string {
  const file = env[variable];
  if (!file) throw new InvalidEnvironmentError(variable, 'must name a PEM file when OCPP_TLS_PORT is set');
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidEnvironmentError(variable, `names a file that cannot be read (${(error as Error).message})`);
  }
}

/**
 * Security profile 3 (README, "Certificate binding"): with OCPP_TLS_PORT set, charge points
 * connect with wss:// to that port and must present a client certificate that chains to
 * OCPP_TLS_CA, was issued by one of OCPP_TLS_ISSUERS (default: OCPP_TLS_CA), has the identity as
 * its CN and, when OCPP_TLS_OPERATOR is set, that O. Undefined when OCPP_TLS_PORT is unset.
 */
export function tlsFromEnv(env: NodeJS.ProcessEnv): Pick<OcppClusterOptions, 'port' | 'tls' | 'authenticate'> | undefined {
  const port = integerFromEnv(env, 'OCPP_TLS_PORT', { min: 1, max: 65_535 });
  if (port === undefined) return undefined;
  if (env.OCPP_PASSWORDS_FILE) {
    throw new InvalidEnvironmentError('OCPP_PASSWORDS_FILE', 'cannot be combined with OCPP_TLS_PORT: profile 3 authenticates by certificate');
  }
  const ca = readEnvFile(env, 'OCPP_TLS_CA');
  const issuers = env.OCPP_TLS_ISSUERS ? readEnvFile(env, 'OCPP_TLS_ISSUERS') : ca;
  return {
    port,
    // The refusal is ours to make, with a reason: TLS asks for the certificate but lets an unverified one through to the hook.
    tls: { cert: readEnvFile(env, 'OCPP_TLS_CERT'), key: readEnvFile(env, 'OCPP_TLS_KEY'), ca, requestCert: true, rejectUnauthorized: false },
    authenticate: certificateAuthenticator({ issuers, operator: env.OCPP_TLS_OPERATOR || undefined }),
  };
}
