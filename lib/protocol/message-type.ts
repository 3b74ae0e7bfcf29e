/** OCPP-J frame type ids (PROTOCOL.md, "Frames"). */
export enum MessageType {
  CALL = 2,
  CALLRESULT = 3,
  CALLERROR = 4,
  /** OCPP 2.1 only: an error about a CALLRESULT we received. */
  CALLRESULTERROR = 5,
  /** OCPP 2.1 only: a fire-and-forget message, never answered. */
  SEND = 6,
}

export type CallFrame = [MessageType.CALL, string, string, Record<string, unknown>];
export type CallResultFrame = [MessageType.CALLRESULT, string, Record<string, unknown>];
export type CallErrorFrame = [MessageType.CALLERROR, string, string, string, Record<string, unknown>];
export type CallResultErrorFrame = [MessageType.CALLRESULTERROR, string, string, string, Record<string, unknown>];
export type SendFrame = [MessageType.SEND, string, string, Record<string, unknown>];

export type OcppFrame = CallFrame | CallResultFrame | CallErrorFrame | CallResultErrorFrame | SendFrame;
