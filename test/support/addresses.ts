import { inboxOf, repliesOf, type NodeAddress } from '../../lib/cluster/address.js';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';

/**
 * The address the cluster layer gives a message for `nodeId` (answers on its replies lane,
 * everything else in its inbox), for tests that publish as a node would.
 */
export function laneOf(nodeId: string, message: ClusterMessage): NodeAddress {
  return message.kind === 'reply' ? repliesOf(nodeId) : inboxOf(nodeId);
}
