import type { CommandResult, Payload, StationControl, Transaction } from './types.js';

/**
 * OCPP 2.0.1 and 2.1: what a station sends, and its answers to the CSMS's commands (valid
 * against the 2.0.1 schemas; 2.1 keeps these messages compatible). Each connector is modelled
 * as its own EVSE with connector 1.
 */

const now = (): string => new Date().toISOString();

export function bootNotification2(identity: string, reason: string): Payload {
  return {
    reason,
    chargingStation: {
      model: 'Simulator',
      vendorName: 'OcppBench',
      serialNumber: identity.slice(0, 25),
      firmwareVersion: '1.0.0',
    },
  };
}

export function statusNotification2(evseId: number, connectorStatus: string): Payload {
  return { timestamp: now(), connectorStatus, evseId, connectorId: 1 };
}

function meterValue(energyWh: number, context: string): Payload {
  return {
    timestamp: now(),
    sampledValue: [{ value: Math.round(energyWh), context, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } }],
  };
}

export function meterValues2(evseId: number, energyWh: number): Payload {
  return { evseId, meterValue: [meterValue(energyWh, 'Trigger')] };
}

export function idToken2(idTag: string): Payload {
  return { idToken: idTag, type: 'ISO14443' };
}

export function transactionEvent2(
  transaction: Transaction,
  eventType: 'Started' | 'Updated' | 'Ended',
  triggerReason: string,
  energyWh: number,
  stoppedReason?: string,
): Payload {
  const transactionInfo: Payload = { transactionId: transaction.id as string };
  if (eventType !== 'Ended') transactionInfo.chargingState = 'Charging';
  if (stoppedReason) transactionInfo.stoppedReason = stoppedReason;
  if (eventType === 'Started' && transaction.remoteStartId !== undefined) transactionInfo.remoteStartId = transaction.remoteStartId;
  const payload: Payload = {
    eventType,
    timestamp: now(),
    triggerReason,
    seqNo: transaction.seqNo++,
    transactionInfo,
    meterValue: [meterValue(energyWh, eventType === 'Started' ? 'Transaction.Begin' : eventType === 'Ended' ? 'Transaction.End' : 'Sample.Periodic')],
  };
  if (eventType === 'Started') {
    payload.idToken = idToken2(transaction.idTag);
    payload.evse = { id: transaction.connectorId, connectorId: 1 };
  }
  return payload;
}

export function notifyReport2(station: StationControl, requestId: number): Payload {
  return {
    requestId,
    generatedAt: now(),
    seqNo: 0,
    tbc: false,
    reportData: station.config.entries().map((entry) => ({
      component: { name: entry.component },
      variable: { name: entry.variable },
      variableAttribute: [{ type: 'Actual', value: entry.value, mutability: entry.readonly ? 'ReadOnly' : 'ReadWrite' }],
    })),
  };
}

const TRIGGERABLE_2 = new Set([
  'BootNotification',
  'Heartbeat',
  'StatusNotification',
  'MeterValues',
  'FirmwareStatusNotification',
  'LogStatusNotification',
]);

interface VariableRequest {
  component?: { name?: string; instance?: string; evse?: unknown };
  variable?: { name?: string; instance?: string };
  attributeType?: string;
  attributeValue?: string;
}

/** Echoes component and variable as the request named them (the result must identify them). */
function identify(item: VariableRequest): { component: Payload; variable: Payload } {
  return { component: { ...(item.component ?? { name: '' }) }, variable: { ...(item.variable ?? { name: '' }) } };
}

function getVariable(station: StationControl, item: VariableRequest): Payload {
  const result: Payload = identify(item);
  if (item.attributeType !== undefined) result.attributeType = item.attributeType;
  const component = item.component?.name ?? '';
  const entry = station.config.byComponent(component, item.variable?.name ?? '');
  if (!entry) {
    result.attributeStatus = station.config.hasComponent(component) ? 'UnknownVariable' : 'UnknownComponent';
  } else if (item.attributeType !== undefined && item.attributeType !== 'Actual') {
    result.attributeStatus = 'NotSupportedAttributeType';
  } else {
    result.attributeStatus = 'Accepted';
    result.attributeValue = entry.value;
  }
  return result;
}

function setVariable(station: StationControl, item: VariableRequest, changed: string[]): Payload {
  const result: Payload = identify(item);
  if (item.attributeType !== undefined) result.attributeType = item.attributeType;
  const component = item.component?.name ?? '';
  const entry = station.config.byComponent(component, item.variable?.name ?? '');
  if (!entry) {
    result.attributeStatus = station.config.hasComponent(component) ? 'UnknownVariable' : 'UnknownComponent';
  } else if (item.attributeType !== undefined && item.attributeType !== 'Actual') {
    result.attributeStatus = 'NotSupportedAttributeType';
  } else if (entry.readonly) {
    result.attributeStatus = 'Rejected';
  } else {
    entry.value = String(item.attributeValue ?? '');
    changed.push(entry.key);
    result.attributeStatus = 'Accepted';
  }
  return result;
}

export function handleCommand2(station: StationControl, action: string, request: Payload): CommandResult {
  switch (action) {
    case 'Reset':
      return { payload: { status: 'Accepted' }, after: () => station.reboot('RemoteReset') };
    case 'ChangeAvailability':
      return { payload: { status: 'Accepted' } };
    case 'DataTransfer':
      return { payload: request.data === undefined ? { status: 'Accepted' } : { status: 'Accepted', data: request.data } };
    case 'TriggerMessage': {
      const message = String(request.requestedMessage);
      if (!TRIGGERABLE_2.has(message)) return { payload: { status: 'NotImplemented' } };
      // 2.x: a station whose boot was already accepted refuses a triggered BootNotification.
      if (message === 'BootNotification' && station.booted) return { payload: { status: 'Rejected' } };
      const evse = request.evse as { id?: number } | undefined;
      return { payload: { status: 'Accepted' }, after: () => station.trigger(message, evse?.id) };
    }
    case 'GetVariables': {
      const items = Array.isArray(request.getVariableData) ? (request.getVariableData as VariableRequest[]) : [];
      return { payload: { getVariableResult: items.map((item) => getVariable(station, item)) } };
    }
    case 'SetVariables': {
      const items = Array.isArray(request.setVariableData) ? (request.setVariableData as VariableRequest[]) : [];
      const changed: string[] = [];
      const setVariableResult = items.map((item) => setVariable(station, item, changed));
      return { payload: { setVariableResult }, after: () => changed.forEach((key) => station.applyConfiguration(key)) };
    }
    case 'GetBaseReport': {
      const requestId = Number(request.requestId);
      return { payload: { status: 'Accepted' }, after: () => station.sendReport(requestId) };
    }
    case 'UnlockConnector': {
      const evseId = Number(request.evseId);
      if (!Number.isInteger(evseId) || evseId < 1 || evseId > station.connectors || request.connectorId !== 1) {
        return { payload: { status: 'UnknownConnector' } };
      }
      if (station.freeConnector(evseId) !== evseId) return { payload: { status: 'OngoingAuthorizedTransaction' } };
      return { payload: { status: 'Unlocked' } };
    }
    case 'RequestStartTransaction': {
      const preferred = typeof request.evseId === 'number' ? request.evseId : undefined;
      const connectorId = station.freeConnector(preferred);
      if (connectorId === null) return { payload: { status: 'Rejected' } };
      const idToken = request.idToken as { idToken?: string } | undefined;
      const remoteStartId = Number(request.remoteStartId);
      return {
        payload: { status: 'Accepted' },
        after: () => station.startTransaction(connectorId, String(idToken?.idToken ?? 'REMOTE'), remoteStartId),
      };
    }
    case 'RequestStopTransaction': {
      const transaction = station.findTransaction(request.transactionId);
      if (!transaction) return { payload: { status: 'Rejected' } };
      return { payload: { status: 'Accepted' }, after: () => station.stopTransaction(transaction, 'Remote') };
    }
    case 'GetTransactionStatus': {
      const id = request.transactionId;
      if (id === undefined) return { payload: { messagesInQueue: false } };
      return { payload: { messagesInQueue: false, ongoingIndicator: station.findTransaction(id) !== undefined } };
    }
    case 'ClearCache':
      return { payload: { status: 'Accepted' } };
    case 'GetLocalListVersion':
      return { payload: { versionNumber: 0 } };
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
    case 'CostUpdated':
      return { payload: {} };
    default:
      return { error: 'NotImplemented', description: `${action} is not implemented by the simulator` };
  }
}
