import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackChild } from './processes.js';

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** True once the server answers PING with PONG. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

/** The bench's own redis-server (no persistence), on its own port; stopped and restarted by pid. */
export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly logDir: string,
  ) {}

  static async start(logDir: string): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), logDir);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts redis-server and resolves once it answers PING. */
  async launch(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const log = createWriteStream(join(this.logDir, `redis-${this.port}.log`), { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    trackChild(child);
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}); see redis-${this.port}.log`);
      if (await ping(this.port)) return;
      await sleep(20);
    }
    throw new Error(`redis-server on ${this.port} did not answer within 10 s`);
  }

  /** SIGKILL by pid (no shutdown save: the data is gone, as after a crash). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    this.child = null;
  }
}

/** One Redis command over a fresh connection; resolves with the raw RESP reply (for INFO, DBSIZE, MEMORY USAGE). */
export function redisCommand(port: number, args: string[], timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis ${args[0]} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    const complete = (text: string): boolean => {
      if (!text.includes('\r\n')) return false;
      if (text[0] !== '$') return true;
      const length = Number(text.slice(1, text.indexOf('\r\n')));
      return length < 0 || Buffer.byteLength(text) >= text.indexOf('\r\n') + 2 + length + 2;
    };
    socket.on('connect', () => socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`));
    socket.on('data', (data) => {
      chunks.push(data);
      const text = Buffer.concat(chunks).toString();
      if (!complete(text)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** `used_memory` from INFO memory, in bytes. */
export async function redisUsedMemory(port: number): Promise<number> {
  const info = await redisCommand(port, ['INFO', 'memory']);
  const match = /used_memory:(\d+)/.exec(info);
  if (!match) throw new Error('INFO memory without used_memory');
  return Number(match[1]);
}
