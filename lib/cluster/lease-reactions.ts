import type { LeaseChange } from './event-adapter.interface.js';
import type { ClusterLogger } from './logger.js';
import type { NodeParts } from './node-parts.js';

/** What the node does when its lease changes (fencing): log, stop taking over others, close sockets when fenced or lost. */
export function reactToLeaseChange(change: LeaseChange, parts: NodeParts, logger: ClusterLogger): void {
  const state = parts.lease.apply(change);
  if (change === 'suspended') logger.warn(`lease suspended: nothing read from the cluster is sent to charge points until it is proven again`);
  else if (change === 'resumed') logger.log('lease proven again; serving commands');
  else if (change === 'rejoined') logger.log('rejoined the cluster under a fresh lease');
  if (change === 'lost') void parts.nodeLoss.stop();
  if (change !== 'fenced' && change !== 'lost') return;
  logger.error(
    state === 'lost'
      ? 'another process holds this node id: closing every charge point socket (1012); this node is not live'
      : 'this node was taken over while its lease had lapsed: closing every charge point socket (1012) so they reconnect to live nodes',
  );
  parts.owners.clear();
  void parts.connections.closeAll(1012, 'service restart');
}

/**
 * Liveness: false once the node knows it lost its authority (another process holds its id, or
 * it was taken over and has not rejoined yet). A lease that merely cannot be proven (Redis
 * unreachable) keeps the node live: restarting it would not bring Redis back.
 */
export function livenessOf(parts: NodeParts): { live: true } | { live: false; reason: string } {
  if (parts.lease.state === 'lost') return { live: false, reason: 'node id held by another process' };
  if (parts.lease.state === 'fenced') return { live: false, reason: 'taken over while its lease had lapsed; rejoining' };
  return { live: true };
}
