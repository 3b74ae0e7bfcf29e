import type { IncomingHttpHeaders } from 'node:http';
import { WebSocket, type ClientOptions } from 'ws';

/** How a WebSocket handshake ended: open, refused with an HTTP answer, or failed. */
export type HandshakeOutcome =
  | { kind: 'open'; ws: WebSocket }
  | { kind: 'rejected'; status: number; body: string; headers: IncomingHttpHeaders }
  | { kind: 'error'; error: Error };

/** Opens a ws client; resolves to how its handshake ended (`created` sees the socket, e.g. to close it later). */
export function handshake(url: string, protocols: string | string[] = 'ocpp1.6', options: ClientOptions = {}, created?: (ws: WebSocket) => void): Promise<HandshakeOutcome> {
  return new Promise<HandshakeOutcome>((resolve) => {
    const ws = new WebSocket(url, protocols, options);
    created?.(ws);
    ws.on('error', (error) => resolve({ kind: 'error', error }));
    ws.once('open', () => resolve({ kind: 'open', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ kind: 'rejected', status: res.statusCode ?? 0, body, headers: res.headers }));
    });
  });
}
