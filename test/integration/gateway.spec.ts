import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, type ClientOptions, type RawData } from 'ws';

import {
  OcppWebSocketGateway,
  type AuthenticationRequest,
  type AuthenticationResult,
  type ConnectionInfo,
  type GatewayOptions,
} from '../../lib/gateway/ocpp-websocket-gateway.js';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import { handshake, type HandshakeOutcome } from '../support/handshake.js';

const WAIT_MS = 5_000;

function withTimeout<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    what,
  );
}

type Outcome = HandshakeOutcome;

const clients = new Set<WebSocket>();

/** Opens a ws client; resolves to how the handshake ended. */
function connect(url: string, protocols: string | string[] = 'ocpp1.6', options: ClientOptions = {}): Promise<Outcome> {
  return withTimeout(
    handshake(url, protocols, options, (ws) => clients.add(ws)),
    `handshake with ${url}`,
  );
}

async function open(url: string, protocols?: string | string[], options?: ClientOptions): Promise<WebSocket> {
  const outcome = await connect(url, protocols, options);
  if (outcome.kind !== 'open') throw new Error(`expected an open socket, got ${JSON.stringify(outcome)}`);
  return outcome.ws;
}

async function rejected(url: string, protocols?: string | string[], options?: ClientOptions): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const outcome = await connect(url, protocols, options);
  if (outcome.kind !== 'rejected') throw new Error(`expected an HTTP rejection, got ${outcome.kind}`);
  return outcome;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('socket already closed');
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    'close',
  );
}

const WS_HEADERS = [
  'Host: 127.0.0.1',
  'Upgrade: websocket',
  'Connection: Upgrade',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version: 13',
];

/**
 * Sends a raw upgrade request and resolves once the server has closed the connection: a
 * handshake the server leaves hanging fails the test through the timeout.
 */
function rawUpgrade(port: number, target: string, headers = [...WS_HEADERS, 'Sec-WebSocket-Protocol: ocpp1.6'], method = 'GET'): Promise<{ status: number; text: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0), text }));
      socket.write(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`);
    }),
    `server to close ${target}`,
  );
}

interface Harness {
  gateway: OcppWebSocketGateway;
  server?: http.Server;
  port: number;
  url: string;
  connections: ConnectionInfo[];
  sockets: WebSocket[];
  rejections: Array<{ reason: string; status: number; detail?: string }>;
  logged: { warn: string[]; error: string[] };
}

const cleanups: Array<() => Promise<void>> = [];

/** A gateway attached to a plain HTTP server, as on a Nest application's server. */
async function attached(options: Partial<GatewayOptions> = {}): Promise<Harness> {
  const server = http.createServer((_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const harness = build(options, (gateway) => gateway.attach(server));
  harness.server = server;
  harness.port = (server.address() as AddressInfo).port;
  harness.url = `ws://127.0.0.1:${harness.port}/ocpp`;
  cleanups.push(async () => {
    await harness.gateway.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return harness;
}

function build(options: Partial<GatewayOptions>, start: (gateway: OcppWebSocketGateway) => void): Harness {
  const harness = { connections: [], sockets: [], rejections: [], logged: { warn: [], error: [] } } as unknown as Harness;
  harness.gateway = new OcppWebSocketGateway({
    protocols: ['ocpp2.0.1', 'ocpp1.6'],
    maxPayload: 65536,
    perMessageDeflate: true,
    logger: { warn: (m) => harness.logged.warn.push(m), error: (m) => harness.logged.error.push(m) },
    onConnection: (ws, info) => {
      harness.connections.push(info);
      harness.sockets.push(ws);
      ws.on('message', (data: RawData) => ws.send(data.toString()));
    },
    onRejected: (reason, status, detail) => harness.rejections.push({ reason, status, detail }),
    ...options,
  });
  start(harness.gateway);
  return harness;
}

afterEach(async () => {
  for (const ws of clients) ws.terminate();
  clients.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await withTimeout(cleanup(), 'cleanup');
});

describe('OcppWebSocketGateway paths and identities', () => {
  it('answers upgrades outside the endpoint with 404 and closes the socket', async () => {
    const h = await attached();
    for (const target of ['/other/CP01', '/ocpp', '/ocpp/CP01/', '/ocpp/CP01/extra', '/ocppCP01', '/']) {
      const { status, text } = await rawUpgrade(h.port, target);
      expect(status).toBe(404);
      expect(text).toMatch(/^HTTP\/1\.1 404 Not Found\r\nConnection: close\r\n/);
      expect(text).toMatch(/\r\nContent-Length: \d+\r\n/);
    }
    const other = await rawUpgrade(h.port, '/api', ['Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: h2c']);
    expect(other.status).toBe(404);
    expect(h.rejections.every((r) => r.reason === 'not-found')).toBe(true);
  });

  it('leaves plain HTTP requests of the shared server alone', async () => {
    const h = await attached();
    const body = await withTimeout(
      new Promise<string>((resolve, reject) => {
        http.get(`http://127.0.0.1:${h.port}/ocpp/CP01`, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      }),
      'plain request',
    );
    expect(body).toBe('hello');
  });

  it.each([
    ['a control character', '/ocpp/CP%0101'],
    ['DEL', '/ocpp/CP%7F01'],
    ['a line feed', '/ocpp/CP%0A01'],
    ['49 characters', `/ocpp/${'x'.repeat(49)}`],
    ['"{"', '/ocpp/CP%7B01%7D'],
    ['"*"', '/ocpp/CP*01'],
    ['":"', '/ocpp/CP:01'],
    ['bad percent-encoding', '/ocpp/CP%ZZ'],
    ['truncated UTF-8', '/ocpp/CP%C3'],
    ['a decoded "/"', '/ocpp/CP%2F01'],
    ['a space', '/ocpp/CP%20X'],
    ['an empty identity', '/ocpp/'],
    ['a dot segment', '/ocpp/..'],
  ])('refuses an identity with %s with 400', async (_what, target) => {
    const h = await attached();
    const { status, text } = await rawUpgrade(h.port, target);
    expect(status).toBe(400);
    expect(text).toMatch(/identity|percent-encoding/);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'bad-identity', status: 400 })]);
    expect(h.connections).toHaveLength(0);
  });

  it('percent-decodes the identity and ignores the query', async () => {
    const h = await attached();
    await open(`${h.url}/CP-%C3%A9?token=1`);
    expect(h.connections[0].identity).toBe('CP-é');
  });

  it('applies maxIdentityLength and identityPattern', async () => {
    const h = await attached({ maxIdentityLength: 8, identityPattern: /^CP\d+$/ });
    expect((await rejected(`${h.url}/CP123456789`)).status).toBe(400);
    expect((await rejected(`${h.url}/XX01`)).status).toBe(400);
    await open(`${h.url}/CP01`);
  });

  it.each([
    ['a POST', 'POST', WS_HEADERS, 405],
    ['a missing Sec-WebSocket-Key', 'GET', WS_HEADERS.filter((l) => !l.startsWith('Sec-WebSocket-Key')), 400],
    ['a wrong Sec-WebSocket-Version', 'GET', [...WS_HEADERS.filter((l) => !l.startsWith('Sec-WebSocket-Version')), 'Sec-WebSocket-Version: 7'], 400],
    ['a malformed Sec-WebSocket-Protocol', 'GET', [...WS_HEADERS, 'Sec-WebSocket-Protocol: ocpp1.6,,x'], 400],
  ])('refuses a handshake with %s, without calling the hook', async (_what, method, headers, expected) => {
    let calls = 0;
    const h = await attached({ authenticate: () => (calls++, true) });
    expect((await rawUpgrade(h.port, '/ocpp/CP01', headers, method)).status).toBe(expected);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'bad-request', status: expected })]);
    expect(calls).toBe(0);
  });

  it('refuses a malformed Sec-WebSocket-Extensions header on an OCPP 2.x handshake with 400', async () => {
    // ws parses extensions during the upgrade itself, so this one is caught after the hook.
    const h = await attached();
    const headers = [...WS_HEADERS, 'Sec-WebSocket-Protocol: ocpp2.0.1', 'Sec-WebSocket-Extensions: permessage-deflate; bogus'];
    expect((await rawUpgrade(h.port, '/ocpp/CP01', headers)).status).toBe(400);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'bad-request', status: 400 })]);
  });
});

describe('OcppWebSocketGateway subprotocols and compression', () => {
  it("chooses in the client's order of preference", async () => {
    const h = await attached({ protocols: ['ocpp2.0.1', 'ocpp1.6'] });
    const a = await open(`${h.url}/CP01`, ['ocpp1.6', 'ocpp2.0.1']);
    expect(a.protocol).toBe('ocpp1.6');
    const b = await open(`${h.url}/CP02`, ['ocpp2.1', 'ocpp2.0.1', 'ocpp1.6']);
    expect(b.protocol).toBe('ocpp2.0.1');
    expect(h.connections.map((c) => c.protocol)).toEqual(['ocpp1.6', 'ocpp2.0.1']);
  });

  it('completes the handshake without a subprotocol, then closes with 1002', async () => {
    const h = await attached();
    const response = await withTimeout(
      new Promise<{ headers: IncomingHttpHeaders; frame: Buffer }>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port: h.port,
          path: '/ocpp/CP01',
          headers: {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
            'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Protocol': 'ocpp1.5, ocpp3.0',
          },
        });
        req.on('error', reject);
        req.on('response', (res) => reject(new Error(`HTTP ${res.statusCode}`)));
        req.on('upgrade', (res, socket, head) => {
          let frame = head;
          const done = (): void => {
            socket.destroy();
            resolve({ headers: res.headers, frame });
          };
          if (frame.length >= 2 && frame.length >= 2 + frame[1]) return done();
          socket.on('data', (chunk: Buffer) => {
            frame = Buffer.concat([frame, chunk]);
            if (frame.length >= 2 && frame.length >= 2 + frame[1]) done();
          });
        });
        req.end();
      }),
      'upgrade without a common subprotocol',
    );
    expect(response.headers['sec-websocket-protocol']).toBeUndefined();
    expect(response.frame[0]).toBe(0x88); // FIN + close
    expect(response.frame.readUInt16BE(2)).toBe(1002);
    expect(response.frame.subarray(4, 2 + response.frame[1]).toString()).toBe('no supported subprotocol');
    expect(h.connections).toHaveLength(0);
    expect(h.rejections).toEqual([{ reason: 'no-subprotocol', status: 1002, detail: 'ocpp1.5, ocpp3.0' }]);
  });

  it('closes a client that offers no subprotocol at all with 1002', async () => {
    const h = await attached();
    const ws = await open(`${h.url}/CP01`, []);
    expect(await closed(ws)).toEqual({ code: 1002, reason: 'no supported subprotocol' });
    expect(h.connections).toHaveLength(0);
  });

  it('negotiates permessage-deflate for OCPP 2.x only', async () => {
    const h = await attached();
    const v2 = await open(`${h.url}/CP01`, 'ocpp2.0.1');
    expect(v2.extensions).toMatch(/^permessage-deflate/);
    const v16 = await open(`${h.url}/CP02`, 'ocpp1.6');
    expect(v16.extensions).toBe('');
    const reply = withTimeout(new Promise<string>((resolve) => v2.once('message', (d: RawData) => resolve(d.toString()))), 'echo');
    const big = JSON.stringify([2, '1', 'DataTransfer', { data: 'x'.repeat(5000) }]);
    v2.send(big);
    expect(await reply).toBe(big);
  });

  it('offers no compression when perMessageDeflate is off', async () => {
    const h = await attached({ perMessageDeflate: false });
    expect((await open(`${h.url}/CP01`, 'ocpp2.0.1')).extensions).toBe('');
  });
});

describe('OcppWebSocketGateway authentication', () => {
  it('passes the request to the hook and the session to onConnection', async () => {
    const session = { tenant: 'acme' };
    let seen: AuthenticationRequest | undefined;
    const h = await attached({
      authenticate: async (req) => {
        seen = req;
        return { accept: true, session };
      },
    });
    await open(`${h.url}/CP01`, ['ocpp2.0.1', 'ocpp1.6']);
    expect(seen).toMatchObject({ identity: 'CP01', protocols: ['ocpp2.0.1', 'ocpp1.6'], protocol: 'ocpp2.0.1', remoteAddress: '127.0.0.1' });
    expect(seen?.password).toBeUndefined();
    expect(seen?.clientCertificate).toBeUndefined();
    expect(seen?.headers.upgrade).toBe('websocket');
    expect(h.connections[0]).toMatchObject({ identity: 'CP01', protocol: 'ocpp2.0.1', remoteAddress: '127.0.0.1' });
    expect(h.connections[0].session).toBe(session);
  });

  it('lets the hook pick another offered protocol, and compresses by the final choice', async () => {
    const h = await attached({ authenticate: () => ({ accept: true, protocol: 'ocpp1.6' }) });
    const ws = await open(`${h.url}/CP01`, ['ocpp2.0.1', 'ocpp1.6']);
    expect(ws.protocol).toBe('ocpp1.6');
    expect(ws.extensions).toBe('');
  });

  it('refuses a protocol override the client did not offer with 500', async () => {
    const h = await attached({ authenticate: () => ({ accept: true, protocol: 'ocpp2.1' }) });
    expect((await rejected(`${h.url}/CP01`, ['ocpp1.6'])).status).toBe(500);
    expect(h.logged.error.join()).toMatch(/did not offer/);
  });

  it('answers false with 401 and a Basic challenge', async () => {
    const h = await attached({ authenticate: () => false });
    const res = await rejected(`${h.url}/CP01`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(h.rejections).toEqual([{ reason: 'unauthorized', status: 401, detail: undefined }]);
  });

  it("answers a refusal with the hook's status and message", async () => {
    const h = await attached({ authenticate: async (): Promise<AuthenticationResult> => ({ accept: false, status: 403, message: 'blocked' }) });
    const res = await rejected(`${h.url}/CP01`);
    expect(res).toMatchObject({ status: 403, body: 'blocked' });
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it.each([
    ['throws', (): AuthenticationResult => {
      throw new Error('db down');
    }],
    ['rejects', (): Promise<AuthenticationResult> => Promise.reject(new Error('db down'))],
  ])('answers 500 and logs when the hook %s', async (_how, authenticate) => {
    const h = await attached({ authenticate });
    const res = await rejected(`${h.url}/CP01`);
    expect(res.status).toBe(500);
    expect(res.body).not.toMatch(/db down/);
    expect(h.logged.error.join()).toMatch(/db down/);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'authentication-error', status: 500 })]);
  });

  it('answers 503 when the hook does not answer in time', async () => {
    const h = await attached({ authenticate: () => new Promise<never>(() => undefined), handshakeTimeoutMs: 100 });
    expect((await rejected(`${h.url}/CP01`)).status).toBe(503);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'handshake-timeout' })]);
  });

  it('hands a binary Basic auth password over byte for byte', async () => {
    const password = Buffer.from([0x00, 0xff, 0x3a, 0x80, 0xc3, 0x28, 0x0a, 0x7f, 0xfe, 0x01, 0x9c, 0xe2, 0x82, 0x28, 0x25, 0x41, 0x00, 0xbf, 0xc0, 0x11]);
    expect(password).toHaveLength(20);
    const passwords: Array<Buffer | undefined> = [];
    const h = await attached({
      authenticate: (req) => {
        passwords.push(req.password);
        return req.password?.equals(password) === true;
      },
    });
    const authorization = `Basic ${Buffer.concat([Buffer.from('CP01:'), password]).toString('base64')}`;
    await open(`${h.url}/CP01`, 'ocpp1.6', { headers: { Authorization: authorization } });
    expect(passwords[0]?.equals(password)).toBe(true);

    expect((await rejected(`${h.url}/CP02`, 'ocpp1.6', { headers: { Authorization: authorization } })).status).toBe(401);
    expect(passwords[1]).toBeUndefined();
  });

  it('passes a wrong password to the hook, which refuses it', async () => {
    const h = await attached({ authenticate: (req) => req.password?.toString() === 'right-password-16' });
    const auth = (pw: string): ClientOptions => ({ headers: { Authorization: `Basic ${Buffer.from(`CP01:${pw}`).toString('base64')}` } });
    expect((await rejected(`${h.url}/CP01`, 'ocpp1.6', auth('wrong-password-16'))).status).toBe(401);
    await open(`${h.url}/CP01`, 'ocpp1.6', auth('right-password-16'));
  });
});

describe('OcppWebSocketGateway limits', () => {
  it('closes with 1009 on a message over maxPayload and keeps serving', async () => {
    const h = await attached({ maxPayload: 1024 });
    const ws = await open(`${h.url}/CP01`);
    const closing = closed(ws);
    ws.send('x'.repeat(2048));
    expect((await closing).code).toBe(1009);
    await eventually(() => h.gateway.connectionCount === 0, 'connection count to drop');
    await open(`${h.url}/CP02`);
  });

  it('answers 503 beyond maxConnections and counts closed sockets out', async () => {
    const h = await attached({ maxConnections: 1 });
    const first = await open(`${h.url}/CP01`);
    expect(h.gateway.connectionCount).toBe(1);
    expect((await rejected(`${h.url}/CP02`)).status).toBe(503);
    expect(h.rejections).toEqual([expect.objectContaining({ reason: 'too-many-connections', status: 503 })]);
    const gone = closed(first);
    first.close(1000);
    await gone;
    await eventually(() => h.gateway.connectionCount === 0, 'connection count to drop');
    await open(`${h.url}/CP02`);
  });

  it('counts handshakes in progress against maxConnections', async () => {
    let release: (() => void) | undefined;
    const h = await attached({
      maxConnections: 1,
      authenticate: () => new Promise<boolean>((resolve) => (release = () => resolve(true))),
    });
    const first = connect(`${h.url}/CP01`);
    await eventually(() => release !== undefined, 'hook call');
    expect((await rejected(`${h.url}/CP02`)).status).toBe(503);
    release?.();
    expect((await first).kind).toBe('open');
  });

  it('answers what isAcceptingConnections says', async () => {
    let draining = false;
    const h = await attached({
      isAcceptingConnections: () => (draining ? { ok: false, status: 503, reason: 'draining' } : { ok: true }),
    });
    await open(`${h.url}/CP01`);
    draining = true;
    expect(await rejected(`${h.url}/CP02`)).toMatchObject({ status: 503, body: 'draining' });
    expect(h.rejections).toEqual([{ reason: 'not-accepting', status: 503, detail: 'draining' }]);
  });

  it('closes with 1011 when onConnection throws', async () => {
    const h = await attached({
      onConnection: () => {
        throw new Error('registry broken');
      },
    });
    const ws = await open(`${h.url}/CP01`);
    expect((await closed(ws)).code).toBe(1011);
    expect(h.logged.error.join()).toMatch(/registry broken/);
  });

  it('validates its options', () => {
    const onConnection = (): void => undefined;
    const option = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return err instanceof InvalidOptionsError ? err.option : 'other error';
      }
      return undefined;
    };
    expect(option(() => new OcppWebSocketGateway({ path: 'ocpp', onConnection }))).toBe('path');
    expect(option(() => new OcppWebSocketGateway({ protocols: [], onConnection }))).toBe('protocols');
    expect(option(() => new OcppWebSocketGateway({ protocols: ['ocpp1.5' as never], onConnection }))).toBe('protocols');
    expect(option(() => new OcppWebSocketGateway({ maxPayload: 0, onConnection }))).toBe('maxPayload');
    expect(option(() => new OcppWebSocketGateway({ maxPayload: 1 << 30, onConnection }))).toBe('maxPayload');
    expect(option(() => new OcppWebSocketGateway({ maxConnections: -1, onConnection }))).toBe('maxConnections');
    expect(option(() => new OcppWebSocketGateway({ onConnection }))).toBeUndefined();
  });
});

describe('OcppWebSocketGateway close', () => {
  it('closes open sockets with 1001 and answers later upgrades on a shared server with 503', async () => {
    let release: (() => void) | undefined;
    const h = await attached({
      authenticate: (req) => (req.identity === 'SLOW' ? new Promise<boolean>((resolve) => (release = () => resolve(true))) : true),
    });
    const ws = await open(`${h.url}/CP01`);
    const slow = connect(`${h.url}/SLOW`);
    await eventually(() => release !== undefined, 'hook call');
    const gone = closed(ws);
    await withTimeout(h.gateway.close(), 'gateway close');
    expect((await gone).code).toBe(1001);
    expect(await slow).toMatchObject({ kind: 'rejected', status: 503 });
    release?.();
    expect((await rejected(`${h.url}/CP02`)).status).toBe(503);
    expect(h.gateway.connectionCount).toBe(0);
    expect(() => h.gateway.attach(http.createServer())).toThrow(/closed/);
  });

  it('closes its own server', async () => {
    const h = build({}, () => undefined);
    const port = await h.gateway.listen(0, '127.0.0.1');
    const ws = await open(`ws://127.0.0.1:${port}/ocpp/CP01`);
    const gone = closed(ws);
    await withTimeout(h.gateway.close(), 'gateway close');
    expect((await gone).code).toBe(1001);
    const after = await connect(`ws://127.0.0.1:${port}/ocpp/CP02`);
    expect(after.kind === 'error' && (after.error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('answers plain requests to its own server with 426 and wrong paths with 404', async () => {
    const h = build({}, () => undefined);
    const port = await h.gateway.listen(0, '127.0.0.1');
    cleanups.push(() => h.gateway.close());
    const status = await withTimeout(
      new Promise<number | undefined>((resolve, reject) => {
        http.get(`http://127.0.0.1:${port}/ocpp/CP01`, (res) => {
          res.resume();
          resolve(res.statusCode);
        }).on('error', reject);
      }),
      'plain request',
    );
    expect(status).toBe(426);
    expect((await rawUpgrade(port, '/elsewhere/CP01')).status).toBe(404);
  });
});

/** A gateway on its own port (listen()), closed after the test. */
async function owned(options: Partial<GatewayOptions> = {}): Promise<Harness> {
  const h = build(options, () => undefined);
  h.port = await h.gateway.listen(0, '127.0.0.1');
  h.url = `ws://127.0.0.1:${h.port}/ocpp`;
  cleanups.push(() => h.gateway.close());
  return h;
}

/** A TCP connection that sends `text` (maybe nothing) and then stays silent; resolves once connected. */
async function idleSocket(port: number, text = ''): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  cleanups.push(async () => void socket.destroy());
  await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 'TCP connect');
  if (text) socket.write(text);
  return { socket, received: () => received, closed };
}

describe('OcppWebSocketGateway connection bounds', () => {
  it('own port: destroys a socket that never completes its upgrade within handshakeTimeoutMs', async () => {
    const h = await owned({ handshakeTimeoutMs: 300 });
    const silent = await idleSocket(h.port);
    const halfRequest = await idleSocket(h.port, 'GET /ocpp/CP01 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    // Node's own defaults held such sockets for 60 s + up to 30 s; the bound here is generous but far below.
    await withTimeout(Promise.all([silent.closed, halfRequest.closed]), 'the server to drop both sockets', 10_000);
    expect(silent.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(h.rejections.filter((r) => r.reason === 'handshake-timeout')).toHaveLength(2);
    // An upgraded socket is not cut by the handshake bound.
    const ws = await open(`${h.url}/CP02`);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('own port: answers 503 beyond maxPendingHandshakes; upgraded and closed sockets no longer count', async () => {
    const h = await owned({ maxPendingHandshakes: 2 });
    const idle = [await idleSocket(h.port), await idleSocket(h.port)];
    const refused = await rejected(`${h.url}/CP01`);
    expect(refused.status).toBe(503);
    expect(h.rejections).toContainEqual(expect.objectContaining({ reason: 'too-many-handshakes', status: 503 }));

    idle[0].socket.destroy();
    await eventually(() => h.gateway.pendingHandshakeCount === 1, 'the closed socket to stop counting');
    const first = await open(`${h.url}/CP01`);
    // CP01 upgraded, so it frees its place: one idle socket plus one more handshake fit again.
    const second = await open(`${h.url}/CP02`);
    expect([first.readyState, second.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);
    expect(h.gateway.pendingHandshakeCount).toBe(1);
  });

  it('shared server: answers 503 beyond maxPendingHandshakes upgrades waiting in authenticate', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<boolean>((resolve) => (release = () => resolve(true)));
    const h = await attached({ authenticate: (req) => (req.identity === 'SLOW' ? held : true), maxPendingHandshakes: 1 });
    const slow = connect(`${h.url}/SLOW`);
    await eventually(() => h.gateway.pendingHandshakeCount === 1, 'the slow handshake to wait in authenticate');
    expect((await rejected(`${h.url}/CP02`)).status).toBe(503);
    expect(h.rejections).toContainEqual(expect.objectContaining({ reason: 'too-many-handshakes' }));
    release!();
    expect((await slow).kind).toBe('open');
    expect((await connect(`${h.url}/CP02`)).kind).toBe('open');
  });

  it('answers 429 with Retry-After once an address used up its connectionRateLimit', async () => {
    const h = await attached({ connectionRateLimit: { perIp: { capacity: 2, refillPerSecond: 0.5 } } });
    await open(`${h.url}/CP01`);
    await open(`${h.url}/CP02`);
    const limited = await rejected(`${h.url}/CP03`);
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('2');
    expect(h.rejections).toContainEqual(expect.objectContaining({ reason: 'rate-limited', status: 429 }));
    expect(h.connections.map((c) => c.identity)).toEqual(['CP01', 'CP02']);
  });

  it('validates the bounds options', () => {
    const base = { onConnection: () => undefined };
    const cases: Array<[string, Partial<GatewayOptions>]> = [
      ['maxPendingHandshakes', { maxPendingHandshakes: 0 }],
      ['handshakeTimeoutMs', { handshakeTimeoutMs: 2 ** 31 }],
      ['connectionRateLimit.perIp', { connectionRateLimit: {} as never }],
      ['connectionRateLimit.perIp.capacity', { connectionRateLimit: { perIp: { capacity: 0, refillPerSecond: 1 } } }],
      ['connectionRateLimit.perIp.refillPerSecond', { connectionRateLimit: { perIp: { capacity: 1, refillPerSecond: 0 } } }],
      ['connectionRateLimit.maxTrackedAddresses', { connectionRateLimit: { perIp: { capacity: 1, refillPerSecond: 1 }, maxTrackedAddresses: 0 } }],
    ];
    for (const [option, patch] of cases) {
      expect(() => new OcppWebSocketGateway({ ...base, ...patch })).toThrow(expect.objectContaining({ option }));
    }
  });
});

describe('OcppWebSocketGateway over TLS', () => {
  let dir: string;
  let pem: Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert', Buffer>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ocpp-gateway-tls-'));
    const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=Test OCPP CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    const issue = (name: string, subject: string, extensions: string): void => {
      writeFileSync(join(dir, `${name}.ext`), extensions);
      openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`,
        '-days', '1', '-extfile', `${name}.ext`);
    };
    issue('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
    issue('client', '/CN=CP01', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    const read = (file: string): Buffer => readFileSync(join(dir, file));
    pem = {
      ca: read('ca.crt'),
      serverKey: read('server.key'),
      serverCert: read('server.crt'),
      clientKey: read('client.key'),
      clientCert: read('client.crt'),
    };
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('profile 2: TLS server with Basic auth', async () => {
    const seen: AuthenticationRequest[] = [];
    const h = build({ authenticate: (req) => (seen.push(req), req.password?.toString() === 'sixteen-byte-pwd') }, () => undefined);
    const port = await h.gateway.listen(0, '127.0.0.1', { key: pem.serverKey, cert: pem.serverCert });
    cleanups.push(() => h.gateway.close());
    const authorization = `Basic ${Buffer.from('CP01:sixteen-byte-pwd').toString('base64')}`;
    const ws = await open(`wss://127.0.0.1:${port}/ocpp/CP01`, 'ocpp1.6', { ca: pem.ca, headers: { Authorization: authorization } });
    expect(ws.protocol).toBe('ocpp1.6');
    expect(seen[0].clientCertificate).toBeUndefined();
    expect((await connect(`wss://127.0.0.1:${port}/ocpp/CP01`, 'ocpp1.6', { ca: pem.ca })).kind).toBe('rejected');
  });

  it('profile 3: the hook sees the verified client certificate; a client without one is refused', async () => {
    const seen: AuthenticationRequest[] = [];
    const h = build(
      { authenticate: (req) => (seen.push(req), req.clientCertificateAuthorized === true && req.clientCertificate?.subject.CN === req.identity) },
      () => undefined,
    );
    const port = await h.gateway.listen(0, '127.0.0.1', {
      key: pem.serverKey,
      cert: pem.serverCert,
      ca: pem.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });
    cleanups.push(() => h.gateway.close());
    const url = `wss://127.0.0.1:${port}/ocpp/CP01`;
    await open(url, 'ocpp2.0.1', { ca: pem.ca, key: pem.clientKey, cert: pem.clientCert });
    expect(seen[0].clientCertificate?.subject.CN).toBe('CP01');
    expect(seen[0].clientCertificateAuthorized).toBe(true);

    expect((await connect(url, 'ocpp2.0.1', { ca: pem.ca })).kind).toBe('error');
    expect(seen).toHaveLength(1);
    expect((await rejected(`wss://127.0.0.1:${port}/ocpp/CP02`, 'ocpp2.0.1', { ca: pem.ca, key: pem.clientKey, cert: pem.clientCert })).status).toBe(401);
  });

  it('profile 3 with optional certificates: the hook refuses a client without one', async () => {
    const h = build({ authenticate: (req) => req.clientCertificate !== undefined }, () => undefined);
    const port = await h.gateway.listen(0, '127.0.0.1', {
      key: pem.serverKey,
      cert: pem.serverCert,
      ca: pem.ca,
      requestCert: true,
      rejectUnauthorized: false,
    });
    cleanups.push(() => h.gateway.close());
    expect((await rejected(`wss://127.0.0.1:${port}/ocpp/CP01`, 'ocpp1.6', { ca: pem.ca })).status).toBe(401);
    await open(`wss://127.0.0.1:${port}/ocpp/CP01`, 'ocpp1.6', { ca: pem.ca, key: pem.clientKey, cert: pem.clientCert });
  });
});
