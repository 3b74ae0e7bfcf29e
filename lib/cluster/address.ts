/**
 * Where a message goes, chosen by the cluster layer; a transport only delivers to it and never
 * reads a message to decide where (or on which lane) it belongs.
 */

/**
 * A node's two lanes: `inbox` carries work for it (commands, evictions), `replies` the answers
 * to its own calls and broadcasts. A transport may keep them apart (Redis: two streams, so an
 * answer never waits behind commands held up by slow charge points) or carry both on one queue.
 */
export type Lane = 'inbox' | 'replies';

/** One node's lane. */
export interface NodeAddress {
  readonly node: string;
  readonly lane: Lane;
}

/** Every live node, the publisher included (at most once each, not acknowledged). */
export interface AllNodesAddress {
  readonly allNodes: true;
}

export type Address = NodeAddress | AllNodesAddress;

export const ALL_NODES: AllNodesAddress = Object.freeze({ allNodes: true as const });

/** Where commands and evictions for `nodeId` go. */
export function inboxOf(nodeId: string): NodeAddress {
  return { node: nodeId, lane: 'inbox' };
}

/** Where answers to `nodeId`'s own calls (and broadcast summaries) go. */
export function repliesOf(nodeId: string): NodeAddress {
  return { node: nodeId, lane: 'replies' };
}

export function isAllNodes(address: Address): address is AllNodesAddress {
  return (address as AllNodesAddress).allNodes === true;
}

/**
 * What a node reads: `node` is its own address (both lanes, at-least-once, acknowledged when
 * the handler settles), `allNodes` what anyone publishes to {@link ALL_NODES}.
 */
export type Subscription = 'node' | 'allNodes';
