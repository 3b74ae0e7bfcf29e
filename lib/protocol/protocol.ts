/** OCPP-J subprotocol names as negotiated in Sec-WebSocket-Protocol. */
export type OcppProtocol = 'ocpp1.6' | 'ocpp2.0.1' | 'ocpp2.1';

/** Newest first: the server's preference when a client offers several. */
export const SUPPORTED_PROTOCOLS: readonly OcppProtocol[] = ['ocpp2.1', 'ocpp2.0.1', 'ocpp1.6'];

export function isOcppProtocol(value: unknown): value is OcppProtocol {
  return value === 'ocpp1.6' || value === 'ocpp2.0.1' || value === 'ocpp2.1';
}

export function isOcpp2(protocol: OcppProtocol): boolean {
  return protocol !== 'ocpp1.6';
}
