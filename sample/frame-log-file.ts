import { createWriteStream } from 'node:fs';
import { redactSecrets } from '../lib/index.js';
import type { FrameLogOptions } from '../lib/index.js';

/**
 * OCPP_FRAME_LOG=<file>: every frame of every charge point on this node, appended as one JSON
 * line each, with idTags, idTokens and password settings redacted (redactSecrets).
 */
export function frameLogToFile(file: string): FrameLogOptions {
  // Appends, so several runs (or a restart) keep one audit trail; the stream buffers the writes.
  const out = createWriteStream(file, { flags: 'a' });
  out.on('error', (error) => console.error(`OCPP_FRAME_LOG ${file}: ${error.message}`));
  return {
    redact: redactSecrets,
    onFrame: (record) => {
      out.write(`${JSON.stringify({ ...record, at: new Date(record.at).toISOString() })}\n`);
    },
  };
}
