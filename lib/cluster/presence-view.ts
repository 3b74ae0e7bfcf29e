import { validateIdentity } from '../protocol/identity.js';
import type { EventAdapterInterface, PresenceRecord } from './event-adapter.interface.js';
import type { LocalConnection, LocalRegistry } from './local-registry.js';
import type { ChargerInfo } from './node-types.js';

/** Who is connected where, as the public API shows it: this node's sockets from memory, the rest from presence. */
export class PresenceView {
  constructor(
    private readonly nodeId: string,
    private readonly adapter: EventAdapterInterface,
    private readonly registry: LocalRegistry,
    private readonly maxIdentityLength: number,
  ) {}

  isConnectedLocally(identity: string): boolean {
    return this.registry.has(identity);
  }

  async isConnected(identity: string): Promise<boolean> {
    return (await this.getPresence(identity)) !== null;
  }

  async getPresence(identity: string): Promise<ChargerInfo | null> {
    const local = this.registry.get(identity);
    if (local) return chargerInfoOf(local, this.nodeId);
    if (validateIdentity(identity, { maxLength: this.maxIdentityLength }) !== null) return null;
    const record = await this.adapter.getPresence(identity);
    return record ? toChargerInfo(record) : null;
  }

  /** Charge points whose socket is on this node. */
  listLocal(): ChargerInfo[] {
    return [...this.registry.values()].map((connection) => chargerInfoOf(connection, this.nodeId));
  }

  /** Every charge point in the cluster (this node's from memory, the rest from presence). */
  async listAll(): Promise<ChargerInfo[]> {
    const byIdentity = new Map<string, ChargerInfo>();
    for (const record of await this.adapter.listPresence()) byIdentity.set(record.identity, toChargerInfo(record));
    for (const connection of this.registry.values()) byIdentity.set(connection.identity, chargerInfoOf(connection, this.nodeId));
    return [...byIdentity.values()].sort((a, b) => a.identity.localeCompare(b.identity));
  }

  /** What this node tells the transport it holds (re-registered after an outage). */
  localPresence(): PresenceRecord[] {
    return [...this.registry.values()].map((connection) => ({
      identity: connection.identity,
      nodeId: this.nodeId,
      epoch: connection.epoch,
      protocol: connection.protocol,
      connectedAt: connection.connectedAt,
    }));
  }
}

export function chargerInfoOf(connection: LocalConnection, nodeId: string): ChargerInfo {
  return toChargerInfo({ identity: connection.identity, protocol: connection.protocol, nodeId, connectedAt: connection.connectedAt });
}

function toChargerInfo(record: Pick<PresenceRecord, 'identity' | 'protocol' | 'nodeId' | 'connectedAt'>): ChargerInfo {
  return {
    identity: record.identity,
    protocol: record.protocol,
    nodeId: record.nodeId,
    connectedAt: new Date(record.connectedAt).toISOString(),
  };
}
