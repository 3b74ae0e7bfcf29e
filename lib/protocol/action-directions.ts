import type { OcppProtocol } from './protocol.js';

/**
 * Who sends an action's CALL: `toCsms` (charge point → CSMS), `toCharger` (CSMS → charge point),
 * `both` (either side, DataTransfer), or `send` (an OCPP 2.1 SEND, never answered).
 */
export type ActionDirection = 'toCsms' | 'toCharger' | 'both' | 'send';

// Hand-kept from the specifications (the schemas do not say who sends what). A unit test checks
// that every table names exactly the actions of its protocol's schema folders.
const OCPP16 = {
  Authorize: 'toCsms',
  BootNotification: 'toCsms',
  CancelReservation: 'toCharger',
  ChangeAvailability: 'toCharger',
  ChangeConfiguration: 'toCharger',
  ClearCache: 'toCharger',
  ClearChargingProfile: 'toCharger',
  DataTransfer: 'both',
  DiagnosticsStatusNotification: 'toCsms',
  FirmwareStatusNotification: 'toCsms',
  GetCompositeSchedule: 'toCharger',
  GetConfiguration: 'toCharger',
  GetDiagnostics: 'toCharger',
  GetLocalListVersion: 'toCharger',
  Heartbeat: 'toCsms',
  MeterValues: 'toCsms',
  RemoteStartTransaction: 'toCharger',
  RemoteStopTransaction: 'toCharger',
  ReserveNow: 'toCharger',
  Reset: 'toCharger',
  SendLocalList: 'toCharger',
  SetChargingProfile: 'toCharger',
  StartTransaction: 'toCsms',
  StatusNotification: 'toCsms',
  StopTransaction: 'toCsms',
  TriggerMessage: 'toCharger',
  UnlockConnector: 'toCharger',
  UpdateFirmware: 'toCharger',
  // Security Whitepaper, 3rd edition
  CertificateSigned: 'toCharger',
  DeleteCertificate: 'toCharger',
  ExtendedTriggerMessage: 'toCharger',
  GetInstalledCertificateIds: 'toCharger',
  GetLog: 'toCharger',
  InstallCertificate: 'toCharger',
  LogStatusNotification: 'toCsms',
  SecurityEventNotification: 'toCsms',
  SignCertificate: 'toCsms',
  SignedFirmwareStatusNotification: 'toCsms',
  SignedUpdateFirmware: 'toCharger',
} as const satisfies Record<string, ActionDirection>;

const OCPP201 = {
  Authorize: 'toCsms',
  BootNotification: 'toCsms',
  CancelReservation: 'toCharger',
  CertificateSigned: 'toCharger',
  ChangeAvailability: 'toCharger',
  ClearCache: 'toCharger',
  ClearChargingProfile: 'toCharger',
  ClearDisplayMessage: 'toCharger',
  ClearVariableMonitoring: 'toCharger',
  ClearedChargingLimit: 'toCsms',
  CostUpdated: 'toCharger',
  CustomerInformation: 'toCharger',
  DataTransfer: 'both',
  DeleteCertificate: 'toCharger',
  FirmwareStatusNotification: 'toCsms',
  Get15118EVCertificate: 'toCsms',
  GetBaseReport: 'toCharger',
  GetCertificateStatus: 'toCsms',
  GetChargingProfiles: 'toCharger',
  GetCompositeSchedule: 'toCharger',
  GetDisplayMessages: 'toCharger',
  GetInstalledCertificateIds: 'toCharger',
  GetLocalListVersion: 'toCharger',
  GetLog: 'toCharger',
  GetMonitoringReport: 'toCharger',
  GetReport: 'toCharger',
  GetTransactionStatus: 'toCharger',
  GetVariables: 'toCharger',
  Heartbeat: 'toCsms',
  InstallCertificate: 'toCharger',
  LogStatusNotification: 'toCsms',
  MeterValues: 'toCsms',
  NotifyChargingLimit: 'toCsms',
  NotifyCustomerInformation: 'toCsms',
  NotifyDisplayMessages: 'toCsms',
  NotifyEVChargingNeeds: 'toCsms',
  NotifyEVChargingSchedule: 'toCsms',
  NotifyEvent: 'toCsms',
  NotifyMonitoringReport: 'toCsms',
  NotifyReport: 'toCsms',
  PublishFirmware: 'toCharger',
  PublishFirmwareStatusNotification: 'toCsms',
  ReportChargingProfiles: 'toCsms',
  RequestStartTransaction: 'toCharger',
  RequestStopTransaction: 'toCharger',
  ReservationStatusUpdate: 'toCsms',
  ReserveNow: 'toCharger',
  Reset: 'toCharger',
  SecurityEventNotification: 'toCsms',
  SendLocalList: 'toCharger',
  SetChargingProfile: 'toCharger',
  SetDisplayMessage: 'toCharger',
  SetMonitoringBase: 'toCharger',
  SetMonitoringLevel: 'toCharger',
  SetNetworkProfile: 'toCharger',
  SetVariableMonitoring: 'toCharger',
  SetVariables: 'toCharger',
  SignCertificate: 'toCsms',
  StatusNotification: 'toCsms',
  TransactionEvent: 'toCsms',
  TriggerMessage: 'toCharger',
  UnlockConnector: 'toCharger',
  UnpublishFirmware: 'toCharger',
  UpdateFirmware: 'toCharger',
} as const satisfies Record<string, ActionDirection>;

// 2.1 keeps every 2.0.1 action, with the same direction, and adds these.
const OCPP21 = {
  ...OCPP201,
  AFRRSignal: 'toCharger',
  AdjustPeriodicEventStream: 'toCharger',
  BatterySwap: 'toCsms',
  ChangeTransactionTariff: 'toCharger',
  ClearDERControl: 'toCharger',
  ClearTariffs: 'toCharger',
  ClosePeriodicEventStream: 'toCsms',
  GetCertificateChainStatus: 'toCsms',
  GetDERControl: 'toCharger',
  GetPeriodicEventStream: 'toCharger',
  GetTariffs: 'toCharger',
  NotifyAllowedEnergyTransfer: 'toCharger',
  NotifyDERAlarm: 'toCsms',
  NotifyDERStartStop: 'toCsms',
  // The one SEND of 2.1 Edition 1 (the spec has the station send it; either side may emit a SEND frame).
  NotifyPeriodicEventStream: 'send',
  NotifyPriorityCharging: 'toCsms',
  NotifySettlement: 'toCsms',
  NotifyWebPaymentStarted: 'toCharger',
  OpenPeriodicEventStream: 'toCsms',
  PullDynamicScheduleUpdate: 'toCsms',
  ReportDERControl: 'toCsms',
  RequestBatterySwap: 'toCharger',
  SetDERControl: 'toCharger',
  SetDefaultTariff: 'toCharger',
  UpdateDynamicSchedule: 'toCharger',
  UsePriorityCharging: 'toCharger',
  VatNumberValidation: 'toCsms',
} as const satisfies Record<string, ActionDirection>;

/** protocol → action → who sends its CALL (or SEND). */
export const ACTION_DIRECTIONS = {
  'ocpp1.6': OCPP16,
  'ocpp2.0.1': OCPP201,
  'ocpp2.1': OCPP21,
} as const satisfies Record<OcppProtocol, Record<string, ActionDirection>>;

export type ActionDirections = typeof ACTION_DIRECTIONS;

/** The direction of `action` in `protocol`, or undefined when the protocol does not define it. */
export function directionOf(protocol: OcppProtocol, action: string): ActionDirection | undefined {
  const table: Readonly<Record<string, ActionDirection>> = ACTION_DIRECTIONS[protocol];
  return Object.hasOwn(table, action) ? table[action] : undefined;
}

/** The CSMS may send it as a CALL. */
export function isCallToCharger(direction: ActionDirection | undefined): boolean {
  return direction === 'toCharger' || direction === 'both';
}

/** A charge point may send it (CALL or SEND), so a CSMS handler can take it. */
export function isInbound(direction: ActionDirection | undefined): boolean {
  return direction === 'toCsms' || direction === 'both' || direction === 'send';
}
