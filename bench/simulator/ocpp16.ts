import type { CommandResult, Payload, StationControl, Transaction } from './types.js';

/** OCPP 1.6J: what a station sends, and its answers to the CSMS's commands (schema-valid). */

const now = (): string => new Date().toISOString();

export function bootNotification16(identity: string): Payload {
  return {
    chargePointVendor: 'OcppBench',
    chargePointModel: 'Simulator',
    chargePointSerialNumber: identity.slice(0, 25),
    firmwareVersion: '1.0.0',
  };
}

export function statusNotification16(connectorId: number, status: string): Payload {
  return { connectorId, errorCode: 'NoError', status, timestamp: now() };
}

export function meterValues16(connectorId: number, transactionId: number | undefined, energyWh: number): Payload {
  const payload: Payload = {
    connectorId,
    meterValue: [
      {
        timestamp: now(),
        sampledValue: [
          { value: String(Math.round(energyWh)), context: 'Sample.Periodic', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
        ],
      },
    ],
  };
  if (transactionId !== undefined) payload.transactionId = transactionId;
  return payload;
}

export function startTransaction16(transaction: Transaction): Payload {
  return {
    connectorId: transaction.connectorId,
    idTag: transaction.idTag,
    meterStart: transaction.meterStartWh,
    timestamp: now(),
  };
}

export function stopTransaction16(transaction: Transaction, meterStopWh: number, reason: string): Payload {
  return {
    transactionId: transaction.id as number,
    idTag: transaction.idTag,
    meterStop: Math.round(meterStopWh),
    timestamp: now(),
    reason,
  };
}

const TRIGGERABLE_16 = new Set([
  'BootNotification',
  'DiagnosticsStatusNotification',
  'FirmwareStatusNotification',
  'Heartbeat',
  'MeterValues',
  'StatusNotification',
]);

export function handleCommand16(station: StationControl, action: string, request: Payload): CommandResult {
  switch (action) {
    case 'Reset':
      return { payload: { status: 'Accepted' }, after: () => station.reboot(request.type === 'Hard' ? 'HardReset' : 'SoftReset') };
    case 'ChangeAvailability':
      return { payload: { status: 'Accepted' } };
    case 'DataTransfer':
      return { payload: request.data === undefined ? { status: 'Accepted' } : { status: 'Accepted', data: request.data } };
    case 'TriggerMessage': {
      const message = String(request.requestedMessage);
      if (!TRIGGERABLE_16.has(message)) return { payload: { status: 'NotImplemented' } };
      const connectorId = typeof request.connectorId === 'number' ? request.connectorId : undefined;
      return { payload: { status: 'Accepted' }, after: () => station.trigger(message, connectorId) };
    }
    case 'GetConfiguration': {
      const wanted = Array.isArray(request.key) ? (request.key as string[]) : null;
      const entries = wanted ? wanted.map((key) => station.config.get(key)) : station.config.entries();
      const payload: Payload = {
        configurationKey: entries.filter((e) => e !== undefined).map((e) => ({ key: e.key, readonly: e.readonly, value: e.value })),
      };
      const unknown = wanted ? wanted.filter((key) => !station.config.get(key)) : [];
      if (unknown.length > 0) payload.unknownKey = unknown;
      return { payload };
    }
    case 'ChangeConfiguration': {
      const entry = station.config.get(String(request.key));
      if (!entry) return { payload: { status: 'NotSupported' } };
      if (entry.readonly) return { payload: { status: 'Rejected' } };
      entry.value = String(request.value);
      return { payload: { status: 'Accepted' }, after: () => station.applyConfiguration(entry.key) };
    }
    case 'UnlockConnector': {
      const connectorId = Number(request.connectorId);
      if (!Number.isInteger(connectorId) || connectorId < 1 || connectorId > station.connectors) {
        return { payload: { status: 'NotSupported' } };
      }
      return { payload: { status: 'Unlocked' } };
    }
    case 'RemoteStartTransaction': {
      const preferred = typeof request.connectorId === 'number' ? request.connectorId : undefined;
      const connectorId = station.freeConnector(preferred);
      if (connectorId === null) return { payload: { status: 'Rejected' } };
      const idTag = String(request.idTag);
      return { payload: { status: 'Accepted' }, after: () => station.startTransaction(connectorId, idTag) };
    }
    case 'RemoteStopTransaction': {
      const transaction = station.findTransaction(request.transactionId);
      if (!transaction) return { payload: { status: 'Rejected' } };
      return { payload: { status: 'Accepted' }, after: () => station.stopTransaction(transaction, 'Remote') };
    }
    case 'ClearCache':
      return { payload: { status: 'Accepted' } };
    case 'GetLocalListVersion':
      return { payload: { listVersion: 0 } };
    case 'SendLocalList':
      return { payload: { status: 'Accepted' } };
    case 'ReserveNow':
      return { payload: { status: 'Rejected' } };
    case 'CancelReservation':
      return { payload: { status: 'Rejected' } };
    case 'SetChargingProfile':
      return { payload: { status: 'Accepted' } };
    case 'ClearChargingProfile':
      return { payload: { status: 'Unknown' } };
    case 'GetCompositeSchedule':
      return { payload: { status: 'Rejected' } };
    case 'GetDiagnostics':
      return { payload: {} };
    case 'UpdateFirmware':
      return { payload: {} };
    default:
      return { error: 'NotImplemented', description: `${action} is not implemented by the simulator` };
  }
}
