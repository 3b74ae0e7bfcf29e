import { request } from 'node:http';

export type ControlAnswer =
  | { kind: 'answer'; status: number; body: unknown; at: number }
  /** The connection was refused: the request never reached the node. */
  | { kind: 'refused'; at: number }
  /** The connection broke before an answer (the node died or closed it). */
  | { kind: 'lost'; at: number; reason: string }
  | { kind: 'hung'; at: number };

/**
 * One HTTP request to a node's control API, on a connection of its own (`agent: false`): a
 * pooled keep-alive socket that the server closes as the request goes out would look like a
 * lost answer. The answer time is taken when the status line arrives.
 */
export function controlRequest(
  baseUrl: string,
  method: string,
  path: string,
  token: string,
  body: unknown,
  abortAfterMs: number,
): Promise<ControlAnswer> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let settled = false;
    const finish = (answer: ControlAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const req = request(`${baseUrl}${path}`, {
      method,
      agent: false,
      headers: {
        authorization: `Bearer ${token}`,
        connection: 'close',
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
      },
    });
    const timer = setTimeout(() => {
      finish({ kind: 'hung', at: Date.now() });
      req.destroy();
    }, abortAfterMs);
    req.on('response', (response) => {
      const at = Date.now();
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // keep the text
        }
        finish({ kind: 'answer', status: response.statusCode ?? 0, body: parsed, at });
      });
      response.on('error', (error) => finish({ kind: 'lost', at: Date.now(), reason: error.message }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') finish({ kind: 'refused', at: Date.now() });
      else finish({ kind: 'lost', at: Date.now(), reason: error.code ?? error.message });
    });
    req.end(payload);
  });
}
