/**
 * OCPP security profile 3: the TLS client certificate is the charge point's credential, so it
 * must be bound to the identity it connects as. OCPP 2.0.1 A00.FR.404/405: the subject's
 * organizationName (O) is the operator (CSO) and its commonName (CN) holds the station's serial
 * number, i.e. its identity. Verifying the chain (TLS) is not enough: without this check any
 * certificate from a trusted CA could connect as any station.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { InvalidOptionsError } from '../protocol/errors.js';
import type { AuthenticationRequest, AuthenticationResult } from './ocpp-websocket-gateway.js';

export interface CertificateBindingOptions {
  /**
   * CA certificates (PEM) allowed to issue station certificates: the client certificate must be
   * signed directly by one of them. The TLS server may trust more CAs than this (e.g. for other clients).
   */
  issuers: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Expected subject O (one, or any of several); unset: not checked. */
  operator?: string | readonly string[];
  /** Whether the subject CN names `identity`. Default: CN === identity. */
  commonNameMatches?: (commonName: string, identity: string) => boolean;
}

/** Why a certificate was refused; stable strings for logs and metrics. */
export type CertificateRefusalReason =
  | 'no-certificate' // not TLS, or the client sent none
  | 'not-verified' // the TLS layer did not verify it (unknown CA, expired, ...)
  | 'untrusted-issuer' // verified, but not issued by one of `issuers`
  | 'identity-mismatch' // its CN does not name the identity in the URL
  | 'operator-mismatch'; // its O is not the operator

export type CertificateCheck =
  | { ok: true; commonName: string; organization: string | undefined; fingerprint256: string }
  | { ok: false; reason: CertificateRefusalReason; message: string };

type CheckedRequest = Pick<AuthenticationRequest, 'identity' | 'clientCertificate' | 'clientCertificateAuthorized'>;

/** The compiled options: issuers parsed once. */
export class CertificateBinding {
  private readonly issuers: X509Certificate[];
  private readonly operators: readonly string[] | null;
  private readonly commonNameMatches: (commonName: string, identity: string) => boolean;

  constructor(options: CertificateBindingOptions) {
    const issuers = typeof options.issuers === 'string' || Buffer.isBuffer(options.issuers) ? [options.issuers] : options.issuers;
    this.issuers = (issuers ?? []).flatMap((pem) => splitPem(pem)).map((pem, index) => {
      try {
        return new X509Certificate(pem);
      } catch (err) {
        throw new InvalidOptionsError(`issuers[${index}]`, `is not a PEM certificate (${err instanceof Error ? err.message : String(err)})`);
      }
    });
    if (this.issuers.length === 0) throw new InvalidOptionsError('issuers', 'must name at least one CA certificate');
    this.operators = options.operator === undefined ? null : typeof options.operator === 'string' ? [options.operator] : options.operator;
    this.commonNameMatches = options.commonNameMatches ?? ((commonName, identity) => commonName === identity);
  }

  /** Checks the request's client certificate against its identity; never throws on what the client sent. */
  check({ identity, clientCertificate, clientCertificateAuthorized }: CheckedRequest): CertificateCheck {
    if (clientCertificate === undefined || clientCertificate.raw === undefined) {
      return refusal('no-certificate', 'a client certificate is required (security profile 3)');
    }
    if (clientCertificateAuthorized !== true) return refusal('not-verified', 'the client certificate did not verify against the trusted CAs');
    const certificate = new X509Certificate(clientCertificate.raw);
    if (!this.issuers.some((issuer) => certificate.checkIssued(issuer) && certificate.verify(issuer.publicKey))) {
      return refusal('untrusted-issuer', `the client certificate was issued by ${describe(clientCertificate.issuer)}, not by a station CA`);
    }
    const commonName = single(clientCertificate.subject?.CN);
    if (commonName === undefined || !this.commonNameMatches(commonName, identity)) {
      return refusal('identity-mismatch', `the client certificate's CN ${JSON.stringify(commonName ?? null)} does not name ${JSON.stringify(identity)}`);
    }
    const organization = single(clientCertificate.subject?.O);
    if (this.operators !== null && (organization === undefined || !this.operators.includes(organization))) {
      return refusal('operator-mismatch', `the client certificate's O ${JSON.stringify(organization ?? null)} is not the operator`);
    }
    return { ok: true, commonName, organization, fingerprint256: clientCertificate.fingerprint256 };
  }
}

/** Checks a handshake's client certificate against its identity (see {@link CertificateBinding}). */
export function authenticateClientCertificate(request: CheckedRequest, options: CertificateBindingOptions | CertificateBinding): CertificateCheck {
  return (options instanceof CertificateBinding ? options : new CertificateBinding(options)).check(request);
}

/**
 * An `authenticate` hook for the module: accepts a bound certificate (session: the check's
 * result), refuses anything else with HTTP 401 (no or unverified certificate) or 403 (a valid
 * certificate of someone else), the reason in the body.
 */
export function certificateAuthenticator(options: CertificateBindingOptions): (request: AuthenticationRequest) => AuthenticationResult {
  const binding = new CertificateBinding(options);
  return (request) => {
    const check = binding.check(request);
    if (check.ok) return { accept: true, session: check };
    const status = check.reason === 'no-certificate' || check.reason === 'not-verified' ? 401 : 403;
    return { accept: false, status, message: `${check.reason}: ${check.message}` };
  };
}

function refusal(reason: CertificateRefusalReason, message: string): CertificateCheck {
  return { ok: false, reason, message };
}

/** A subject field given once; a repeated field (an array) is ambiguous, so it counts as absent. */
function single(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function describe(name: PeerCertificate['issuer'] | undefined): string {
  return name === undefined ? 'an unknown issuer' : Object.entries(name).map(([key, value]) => `${key}=${String(value)}`).join(', ');
}

/** A PEM bundle holds several certificates; X509Certificate reads one. */
function splitPem(pem: string | Buffer): string[] {
  const text = pem.toString();
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  return blocks ?? [text];
}
