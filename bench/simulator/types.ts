import type { ConfigStore } from './config-store.js';

export type OcppProtocol = 'ocpp1.6' | 'ocpp2.0.1' | 'ocpp2.1';
export const PROTOCOLS: readonly OcppProtocol[] = ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'];

export type Payload = Record<string, unknown>;

/** What a CSMS command does: a CALLRESULT payload or a CALLERROR, and optionally something to do once answered. */
export type CommandResult =
  | { payload: Payload; after?: () => void }
  | { error: string; description: string };

export interface Transaction {
  /** 1.6: the CSMS's integer once StartTransaction was answered; 2.x: our own string. */
  id: number | string | null;
  connectorId: number;
  idTag: string;
  meterStartWh: number;
  startedAt: number;
  seqNo: number;
  remoteStartId?: number;
}

/** The part of a station that answering CSMS commands needs. */
export interface StationControl {
  readonly identity: string;
  readonly protocol: OcppProtocol;
  readonly connectors: number;
  readonly config: ConfigStore;
  /** BootNotification accepted on the current socket. */
  readonly booted: boolean;
  /** The first connector without a transaction, or null. */
  freeConnector(preferred?: number): number | null;
  findTransaction(id: unknown): Transaction | undefined;
  /** Starts a transaction without Authorize (remote start); false when the connector is busy. */
  startTransaction(connectorId: number, idTag: string, remoteStartId?: number): boolean;
  stopTransaction(transaction: Transaction, reason: string): void;
  /** Sends the triggered message; false when this simulator cannot send that one. */
  trigger(message: string, connectorId?: number): boolean;
  /** Closes the socket and boots again, as after a reset. */
  reboot(reason: string): void;
  applyConfiguration(entryKey: string): void;
  sendReport(requestId: number): void;
}
