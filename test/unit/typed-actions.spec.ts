import { describe, expect, it } from '@jest/globals';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { ACTION_DIRECTIONS } from '../../lib/protocol/action-directions.js';
import { UnknownActionError } from '../../lib/protocol/errors.js';
import { outboundActionProblem } from '../../lib/protocol/outbound-actions.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';
import { SchemaValidator } from '../../lib/protocol/validator.js';

const validator = new SchemaValidator();
const ALL: OcppProtocol[] = ['ocpp2.1', 'ocpp2.0.1', 'ocpp1.6'];
const notDeclared = () => false;

describe('the hand-kept direction table', () => {
  it.each(ALL)('%s names exactly the actions of its schema folders', (protocol) => {
    expect(Object.keys(ACTION_DIRECTIONS[protocol]).sort()).toEqual(validator.actions(protocol));
  });

  it('marks the one action without a response schema as the SEND', () => {
    const sends = Object.entries(ACTION_DIRECTIONS['ocpp2.1']).filter(([, direction]) => direction === 'send');
    expect(sends.map(([action]) => action)).toEqual(['NotifyPeriodicEventStream']);
  });
});

describe('outbound actions are refused before anything is sent', () => {
  it('refuses a misspelt action, an action of another version, and the wrong direction', () => {
    expect(outboundActionProblem(ALL, 'ocpp1.6', 'Rest', 'call', notDeclared)).toBeInstanceOf(UnknownActionError);
    expect(outboundActionProblem(ALL, 'ocpp2.0.1', 'RemoteStartTransaction', 'call', notDeclared)?.message).toContain('ocpp2.0.1');
    expect(outboundActionProblem(ALL, 'ocpp1.6', 'BootNotification', 'call', notDeclared)).toBeInstanceOf(UnknownActionError);
    expect(outboundActionProblem(ALL, 'ocpp2.1', 'Reset', 'send', notDeclared)).toBeInstanceOf(UnknownActionError);
    expect(outboundActionProblem(['ocpp1.6'], 'ocpp2.1', 'Reset', 'call', notDeclared)?.message).toContain('not configured');
    expect(outboundActionProblem(['ocpp1.6'], undefined, 'RequestStartTransaction', 'call', notDeclared)).toBeInstanceOf(UnknownActionError);
  });

  it('lets through what the protocol defines, and declared vendor actions', () => {
    expect(outboundActionProblem(ALL, 'ocpp2.0.1', 'RequestStartTransaction', 'call', notDeclared)).toBeNull();
    expect(outboundActionProblem(ALL, undefined, 'GetConfiguration', 'call', notDeclared)).toBeNull();
    expect(outboundActionProblem(ALL, 'ocpp2.1', 'NotifyPeriodicEventStream', 'send', notDeclared)).toBeNull();
    expect(outboundActionProblem(ALL, 'ocpp1.6', 'BootNotification', 'raw', notDeclared)).toBeNull();
    expect(outboundActionProblem(ALL, 'ocpp1.6', 'VendorPing', 'raw', notDeclared)).toBeInstanceOf(UnknownActionError);
    expect(outboundActionProblem(ALL, 'ocpp1.6', 'VendorPing', 'raw', (_p, action) => action === 'VendorPing')).toBeNull();
  });
});

describe('handlers for actions no charge point sends fail the boot', () => {
  const handler = () => ({});

  it('names a misspelt action', () => {
    const registry = new HandlerRegistry();
    registry.register('BootNotifcation', handler);
    expect(() => registry.requireKnownActions(ALL, notDeclared)).toThrow(UnknownActionError);
    expect(() => registry.requireKnownActions(ALL, notDeclared)).toThrow(/"BootNotifcation"/);
  });

  it('refuses the wrong direction and an action missing from a named protocol', () => {
    const reset = new HandlerRegistry();
    reset.register('Reset', handler);
    expect(() => reset.requireKnownActions(ALL, notDeclared)).toThrow(/"Reset"/);
    const start = new HandlerRegistry();
    start.register('StartTransaction', handler, ['ocpp1.6', 'ocpp2.0.1']);
    expect(() => start.requireKnownActions(ALL, notDeclared)).toThrow(/"StartTransaction"/);
  });

  it('accepts defined inbound actions, SEND handlers, and declared custom ones', () => {
    const registry = new HandlerRegistry();
    registry.register('BootNotification', handler);
    registry.register('StartTransaction', handler, ['ocpp1.6']);
    registry.register('SecurityEventNotification', handler, ['ocpp1.6', 'ocpp2.1']);
    registry.register('NotifyPeriodicEventStream', handler, ['ocpp2.1']);
    registry.register('VendorHello', handler, undefined, true);
    registry.register('VendorPing', handler, ['ocpp2.0.1']);
    expect(() => registry.requireKnownActions(['ocpp2.0.1'], (_p, action) => action === 'VendorPing')).not.toThrow();
  });
});
