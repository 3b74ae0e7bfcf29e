import type { ServerInfo } from '@nats-io/transport-node';

/**
 * Whether a compare-and-set accepted by this server may still be overtaken by another one made on
 * the same revision: a clustered nats-server before 2.9.21 compares a write's expected revision
 * before it proposes the write, not when it applies it (nats-server#4320), so two writers that read
 * the same revision can both succeed and the one applied last wins. A standalone server compares
 * when it stores. Unknown (not connected yet, no version): assumed so.
 */
export function casMayBeOvertaken(info: Pick<ServerInfo, 'version' | 'cluster'> | undefined): boolean {
  if (!info) return true;
  if (!info.cluster) return false;
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(info.version ?? '');
  if (!match) return true;
  const [major, minor, patch] = match.slice(1).map(Number) as [number, number, number];
  return major < 2 || (major === 2 && (minor < 9 || (minor === 9 && patch < 21)));
}

/**
 * The warning for a replicated deployment on such a server (null when there is nothing to warn
 * about): presence writes are confirmed (presence-bucket.ts), the nodes bucket's are not.
 */
export function overtakenCasWarning(info: Pick<ServerInfo, 'version' | 'cluster'> | undefined, replicas: number): string | null {
  if (replicas <= 1 || !info || !casMayBeOvertaken(info)) return null;
  return (
    `nats-server ${info.version} (cluster ${info.cluster}) checks a compare-and-set's expected revision when it proposes a write, ` +
    `not when it applies it (nats-server#4320, fixed in 2.9.21). With replicas ${replicas}, presence writes are confirmed, ` +
    `but the nodes bucket is not: two survivors may both fence the same lost node, and a heartbeat racing a survivor's fence ` +
    `may be accepted with it (the node keeps serving while it is taken over). Use nats-server >= 2.9.21 for replicated buckets.`
  );
}
