import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { CsmsProcess } from '../support/csms-process.js';
import { withTimeout } from '../support/wait.js';

/**
 * Security profile 3 (README, "Certificate binding"): a sample process serving wss:// with
 * certificates made by openssl here. CA 1 issues station certificates; CA 2 is trusted by TLS
 * but issues no station certificates; CA 3 is not trusted at all. Only a certificate of CA 1
 * whose CN is the identity and whose O is the operator connects.
 */

const OPERATOR = 'ExampleCPO';
let dir: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/O=Test PKI/CN=${name}`);
}

function makeLeaf(name: string, ca: string, subject: string, extensions?: string): void {
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  const extra = extensions ? ['-extfile', `${name}.ext`] : [];
  if (extensions) writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, ...extra);
}

const file = (name: string): string => join(dir, name);
const read = (name: string): string => readFileSync(file(name), 'utf8');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

type Attempt = { open: true; socket: WebSocket } | { open: false; status: number; body: string };

/** A real TLS WebSocket client, with `cert` as its client certificate (none when undefined). */
function connect(url: string, cert?: string): Promise<Attempt> {
  const credentials = cert === undefined ? {} : { cert: read(`${cert}.pem`), key: read(`${cert}.key`) };
  const socket = new WebSocket(url, 'ocpp1.6', { ca: read('ca1.pem'), ...credentials });
  return withTimeout(
    new Promise<Attempt>((resolve, reject) => {
      socket.once('open', () => resolve({ open: true, socket }));
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ open: false, status: response.statusCode ?? 0, body }));
      });
    }),
    10_000,
    `the handshake with ${cert ?? 'no certificate'}`,
  );
}

describe('security profile 3 certificate binding (sample process, openssl certificates)', () => {
  let csms: CsmsProcess;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certificate-binding-'));
    for (const ca of ['ca1', 'ca2', 'ca3']) makeCa(ca);
    makeLeaf('server', 'ca1', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    makeLeaf('good', 'ca1', `/O=${OPERATOR}/CN=CP-TLS-1`);
    makeLeaf('other-station', 'ca1', `/O=${OPERATOR}/CN=CP-TLS-2`);
    makeLeaf('other-operator', 'ca1', '/O=OtherCPO/CN=CP-TLS-1');
    makeLeaf('from-ca2', 'ca2', `/O=${OPERATOR}/CN=CP-TLS-1`);
    makeLeaf('from-ca3', 'ca3', `/O=${OPERATOR}/CN=CP-TLS-1`);
    writeFileSync(file('trusted.pem'), read('ca1.pem') + read('ca2.pem'));
    const port = await freePort();
    csms = await CsmsProcess.start('tls-a', {
      OCPP_TLS_PORT: String(port),
      OCPP_TLS_CERT: file('server.pem'),
      OCPP_TLS_KEY: file('server.key'),
      OCPP_TLS_CA: file('trusted.pem'),
      OCPP_TLS_ISSUERS: file('ca1.pem'),
      OCPP_TLS_OPERATOR: OPERATOR,
    });
    url = `wss://127.0.0.1:${port}/ocpp/CP-TLS-1`;
  }, 60_000);

  afterAll(async () => {
    await csms?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the station\'s own certificate, and the charge point talks', async () => {
    const attempt = await connect(url, 'good');
    expect(attempt.open).toBe(true);
    if (!attempt.open) return;
    const reply = new Promise<unknown>((resolve) => attempt.socket.once('message', (data) => resolve(JSON.parse(data.toString()))));
    attempt.socket.send(JSON.stringify([2, 'h1', 'Heartbeat', {}]));
    expect(await withTimeout(reply, 10_000, 'the Heartbeat reply')).toEqual([3, 'h1', { currentTime: expect.any(String) }]);
    expect(await csms.http('GET', '/chargers')).toMatchObject({ status: 200, body: [{ identity: 'CP-TLS-1', nodeId: 'tls-a' }] });
    attempt.socket.close();
  });

  it.each([
    ['no certificate', undefined, 401, 'no-certificate'],
    ['a certificate from a CA nobody trusts', 'from-ca3', 401, 'not-verified'],
    ['a certificate from a CA trusted by TLS that issues no station certificates', 'from-ca2', 403, 'untrusted-issuer'],
    ['the certificate of another station', 'other-station', 403, 'identity-mismatch'],
    ['a certificate of another operator', 'other-operator', 403, 'operator-mismatch'],
  ])('refuses %s with a typed reason', async (_what, cert, status, reason) => {
    const attempt = await connect(url, cert);
    expect(attempt).toEqual({ open: false, status, body: expect.stringMatching(new RegExp(`^${reason}: `)) });
  });
});
