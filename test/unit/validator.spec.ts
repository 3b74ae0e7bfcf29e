import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jest } from '@jest/globals';
import { Ajv } from 'ajv';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';
import { SchemaValidator, type ValidationProblem } from '../../lib/protocol/validator.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SCHEMAS = join(ROOT, 'schemas');

// The OCA sets shipped (see schemas/NOTICE.md): folder → what it holds.
const SHIPPED: Record<string, { protocol: OcppProtocol; files: number; sends: string[]; draft: string }> = {
  'ocpp1.6': { protocol: 'ocpp1.6', files: 56, sends: [], draft: 'http://json-schema.org/draft-04/schema#' },
  'ocpp1.6-security': { protocol: 'ocpp1.6', files: 22, sends: [], draft: 'http://json-schema.org/draft-06/schema#' },
  'ocpp2.0.1': { protocol: 'ocpp2.0.1', files: 128, sends: [], draft: 'http://json-schema.org/draft-06/schema#' },
  'ocpp2.1': { protocol: 'ocpp2.1', files: 181, sends: ['NotifyPeriodicEventStream'], draft: 'http://json-schema.org/draft-06/schema#' },
};
// Actions each protocol knows: every folder it reads, request/response pairs plus SEND messages.
const ACTIONS: Record<OcppProtocol, number> = { 'ocpp1.6': 28 + 11, 'ocpp2.0.1': 64, 'ocpp2.1': 90 + 1 };

const SECURITY_16 = [
  'CertificateSigned',
  'DeleteCertificate',
  'ExtendedTriggerMessage',
  'GetInstalledCertificateIds',
  'GetLog',
  'InstallCertificate',
  'LogStatusNotification',
  'SecurityEventNotification',
  'SignCertificate',
  'SignedFirmwareStatusNotification',
  'SignedUpdateFirmware',
];

const BOOT_16 = { chargePointVendor: 'Vendor', chargePointModel: 'Model' };
const BOOT_16_RESPONSE = { status: 'Accepted', currentTime: '2024-05-01T12:00:00Z', interval: 300 };
const BOOT_2 = { reason: 'PowerUp', chargingStation: { model: 'Model', vendorName: 'Vendor' } };
const BOOT_2_RESPONSE = { status: 'Accepted', currentTime: '2024-05-01T12:00:00.000Z', interval: 300 };

const validator = new SchemaValidator();

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.json')).sort();
}

describe('shipped OCA schemas', () => {
  it.each(Object.entries(SHIPPED))('%s: every file parses and pairs up', (folder, expected) => {
    const files = jsonFiles(join(SCHEMAS, folder));
    expect(files).toHaveLength(expected.files);
    for (const file of files) {
      const schema = JSON.parse(readFileSync(join(SCHEMAS, folder, file), 'utf8')) as Record<string, unknown>;
      expect(schema.$schema).toBe(expected.draft);
    }
    const requestSuffix = expected.protocol === 'ocpp1.6' ? '' : 'Request';
    const calls = files
      .filter((file) => file.endsWith('Response.json'))
      .map((file) => file.slice(0, -'Response.json'.length));
    const paired = calls.flatMap((action) => [`${action}${requestSuffix}.json`, `${action}Response.json`]);
    expect([...paired, ...expected.sends.map((action) => `${action}.json`)].sort()).toEqual(files);
  });

  it.each(Object.entries(ACTIONS))('%s: every action of its folders is known and compiles', (protocol, count) => {
    const fresh = new SchemaValidator();
    expect(fresh.actions(protocol as OcppProtocol)).toHaveLength(count);
    expect(() => fresh.warmUp(protocol as OcppProtocol)).not.toThrow();
  });

  it('1.6 knows the Security Whitepaper messages beside the core set', () => {
    expect(validator.actions('ocpp1.6')).toEqual(expect.arrayContaining([...SECURITY_16, 'BootNotification']));
    expect(validator.validate('ocpp1.6', 'SignCertificate', 'request', {})).toMatchObject({
      errorCode: 'OccurenceConstraintViolation',
      details: { path: '/csr' },
    });
    expect(validator.validate('ocpp1.6', 'SignCertificate', 'request', { csr: '-----BEGIN CERTIFICATE REQUEST-----' })).toBeNull();
    expect(validator.validate('ocpp1.6', 'CertificateSigned', 'response', { status: 'Maybe' })?.errorCode).toBe(
      'PropertyConstraintViolation',
    );
    // 2.x has its own SignCertificate; the 1.6 set does not leak into it.
    expect(validator.hasAction('ocpp2.0.1', 'SignedUpdateFirmware')).toBe(false);
  });

  it('2.1 files keep their OCA ids and comment', () => {
    const schema = JSON.parse(readFileSync(join(SCHEMAS, 'ocpp2.1', 'BootNotificationRequest.json'), 'utf8'));
    expect(schema.$id).toBe('urn:OCPP:Cp:2:2025:1:BootNotificationRequest');
    expect(schema.comment).toMatch(/^OCPP 2\.1 Edition 1 \(c\) OCA/);
  });

  it('2.0.1 files keep their OCA ids and comment', () => {
    const schema = JSON.parse(readFileSync(join(SCHEMAS, 'ocpp2.0.1', 'BootNotificationRequest.json'), 'utf8'));
    expect(schema.$id).toBe('urn:OCPP:Cp:2:2020:3:BootNotificationRequest');
    expect(schema.comment).toBe('OCPP 2.0.1 FINAL');
    expect(schema.definitions.CustomDataType).toBeDefined();
  });

  it('are byte-identical to their source, as recorded in CHECKSUMS.sha256', () => {
    const manifest = new Map<string, string>();
    for (const line of readFileSync(join(SCHEMAS, 'CHECKSUMS.sha256'), 'utf8').split('\n')) {
      if (!line) continue;
      const match = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
      expect(match).not.toBeNull();
      manifest.set(match![2], match![1]);
    }
    const shipped = readdirSync(SCHEMAS, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .flatMap((entry) => jsonFiles(join(SCHEMAS, entry.name)).map((file) => `${entry.name}/${file}`))
      .sort();
    expect(shipped).toEqual([...manifest.keys()].sort());
    for (const file of shipped) {
      const digest = createHash('sha256').update(readFileSync(join(SCHEMAS, file))).digest('hex');
      expect({ file, digest }).toEqual({ file, digest: manifest.get(file) });
    }
  });

  it('carry the OCA notice', () => {
    const notice = readFileSync(join(SCHEMAS, 'NOTICE.md'), 'utf8');
    expect(notice).toContain('Open Charge Alliance');
    expect(notice).toContain('https://creativecommons.org/licenses/by-nd/4.0/');
  });
});

describe('SchemaValidator', () => {
  it('finds the package schemas/ directory by itself', () => {
    expect(validator.actions('ocpp1.6')).toContain('BootNotification');
  });

  it('rejects a schemasDir that is not a directory', () => {
    expect(() => new SchemaValidator({ schemasDir: join(ROOT, 'no-such-dir') })).toThrow(InvalidOptionsError);
  });

  it('accepts valid BootNotification request and response (1.6, 2.0.1)', () => {
    expect(validator.validate('ocpp1.6', 'BootNotification', 'request', BOOT_16)).toBeNull();
    expect(validator.validate('ocpp1.6', 'BootNotification', 'response', BOOT_16_RESPONSE)).toBeNull();
    expect(validator.validate('ocpp2.0.1', 'BootNotification', 'request', BOOT_2)).toBeNull();
    expect(validator.validate('ocpp2.0.1', 'BootNotification', 'response', BOOT_2_RESPONSE)).toBeNull();
  });

  it('keeps request and response schemas apart', () => {
    const problem = validator.validate('ocpp1.6', 'BootNotification', 'response', BOOT_16);
    expect(problem?.errorCode).toBe('OccurenceConstraintViolation');
  });

  it('returns null for an action without a schema, and reports it unknown', () => {
    expect(validator.validate('ocpp1.6', 'NoSuchAction', 'request', { anything: 1 })).toBeNull();
    expect(validator.hasAction('ocpp1.6', 'NoSuchAction')).toBe(false);
    expect(validator.hasAction('ocpp1.6', '__proto__')).toBe(false);
    // 1.6 has no TransactionEvent, 2.0.1 has no StartTransaction.
    expect(validator.hasAction('ocpp1.6', 'TransactionEvent')).toBe(false);
    expect(validator.hasAction('ocpp2.0.1', 'StartTransaction')).toBe(false);
  });

  it('validates 2.1 both ways with the 2.1 schemas', () => {
    expect(validator.validate('ocpp2.1', 'BootNotification', 'request', {})).toMatchObject({
      errorCode: 'OccurrenceConstraintViolation',
      details: { path: '/reason', keyword: 'required' },
    });
    expect(validator.validate('ocpp2.1', 'BootNotification', 'request', BOOT_2)).toBeNull();
    expect(validator.validate('ocpp2.1', 'BootNotification', 'response', BOOT_2_RESPONSE)).toBeNull();
    expect(validator.validate('ocpp2.1', 'Reset', 'request', { type: 'Bogus' })).toMatchObject({
      errorCode: 'PropertyConstraintViolation',
      details: { path: '/type', keyword: 'enum' },
    });
    // ImmediateAndResume is new in 2.1: 2.0.1 refuses it.
    expect(validator.validate('ocpp2.1', 'Reset', 'request', { type: 'ImmediateAndResume' })).toBeNull();
    expect(validator.validate('ocpp2.0.1', 'Reset', 'request', { type: 'ImmediateAndResume' })?.errorCode).toBe(
      'PropertyConstraintViolation',
    );
    expect(validator.validate('ocpp2.1', 'NotifyPeriodicEventStream', 'request', { id: 1 })?.errorCode).toBe(
      'OccurrenceConstraintViolation',
    );
    expect(validator.validate('ocpp2.1', 'StatusNotification', 'request', null)?.errorCode).toBe('FormatViolation');
  });

  it('compiles each schema once', () => {
    const compile = jest.spyOn(Ajv.prototype, 'compile');
    try {
      const fresh = new SchemaValidator();
      for (let i = 0; i < 3; i++) {
        fresh.validate('ocpp2.0.1', 'Heartbeat', 'request', {});
        fresh.validate('ocpp2.0.1', 'Heartbeat', 'response', { currentTime: 'x' });
      }
      fresh.warmUp('ocpp2.0.1');
      expect(compile).toHaveBeenCalledTimes(128);
    } finally {
      compile.mockRestore();
    }
  });

  describe('maps schema errors to OCPP error codes', () => {
    const cases: [string, OcppProtocol, string, 'request' | 'response', unknown, Partial<ValidationProblem>][] = [
      [
        'missing property (1.6 spelling)',
        'ocpp1.6',
        'BootNotification',
        'request',
        { chargePointModel: 'Model' },
        {
          errorCode: 'OccurenceConstraintViolation',
          description: '"chargePointVendor" is required',
          details: { path: '/chargePointVendor', keyword: 'required' },
        },
      ],
      [
        'missing property (2.0.1 spelling)',
        'ocpp2.0.1',
        'BootNotification',
        'request',
        { chargingStation: BOOT_2.chargingStation },
        {
          errorCode: 'OccurrenceConstraintViolation',
          description: '"reason" is required',
          details: { path: '/reason', keyword: 'required' },
        },
      ],
      [
        'missing nested property',
        'ocpp2.0.1',
        'BootNotification',
        'request',
        { reason: 'PowerUp', chargingStation: { model: 'Model' } },
        {
          errorCode: 'OccurrenceConstraintViolation',
          description: '"vendorName" is required in "/chargingStation"',
          details: { path: '/chargingStation/vendorName', keyword: 'required' },
        },
      ],
      [
        'wrong type',
        'ocpp1.6',
        'BootNotification',
        'request',
        { ...BOOT_16, chargePointVendor: 42 },
        {
          errorCode: 'TypeConstraintViolation',
          description: '"/chargePointVendor" must be string',
          details: { path: '/chargePointVendor', keyword: 'type', expected: 'string' },
        },
      ],
      [
        'wrong type (2.0.1)',
        'ocpp2.0.1',
        'BootNotification',
        'response',
        { ...BOOT_2_RESPONSE, interval: '300' },
        { errorCode: 'TypeConstraintViolation', details: { path: '/interval', keyword: 'type', expected: 'integer' } },
      ],
      [
        'too long',
        'ocpp1.6',
        'BootNotification',
        'request',
        { ...BOOT_16, chargePointVendor: 'V'.repeat(21) },
        {
          errorCode: 'PropertyConstraintViolation',
          description: '"/chargePointVendor" must NOT have more than 20 characters',
          details: { path: '/chargePointVendor', keyword: 'maxLength', limit: 20 },
        },
      ],
      [
        'not in the enum',
        'ocpp1.6',
        'BootNotification',
        'response',
        { ...BOOT_16_RESPONSE, status: 'Maybe' },
        { errorCode: 'PropertyConstraintViolation', details: expect.objectContaining({ path: '/status', keyword: 'enum' }) },
      ],
      [
        'bad date-time',
        'ocpp2.0.1',
        'BootNotification',
        'response',
        { ...BOOT_2_RESPONSE, currentTime: 'yesterday' },
        {
          errorCode: 'PropertyConstraintViolation',
          details: { path: '/currentTime', keyword: 'format', format: 'date-time' },
        },
      ],
      [
        'unknown property',
        'ocpp1.6',
        'Heartbeat',
        'request',
        { extra: true },
        {
          errorCode: 'PropertyConstraintViolation',
          description: '"/extra" is not allowed',
          details: { path: '/extra', keyword: 'additionalProperties' },
        },
      ],
      [
        'too few items',
        'ocpp2.0.1',
        'GetVariables',
        'request',
        { getVariableData: [] },
        {
          errorCode: 'PropertyConstraintViolation',
          details: { path: '/getVariableData', keyword: 'minItems', limit: 1 },
        },
      ],
      [
        'payload not an object (1.6)',
        'ocpp1.6',
        'Heartbeat',
        'request',
        [],
        { errorCode: 'FormationViolation', description: 'payload must be a JSON object, got array' },
      ],
      [
        'payload not an object (2.0.1)',
        'ocpp2.0.1',
        'Heartbeat',
        'request',
        null,
        { errorCode: 'FormatViolation', description: 'payload must be a JSON object, got null' },
      ],
    ];

    it.each(cases)('%s', (_name, protocol, action, direction, payload, expected) => {
      expect(validator.validate(protocol, action, direction, payload)).toMatchObject(expected);
    });
  });

  it('keeps descriptions and paths within 255 characters', () => {
    const problem = validator.validate('ocpp2.0.1', 'Heartbeat', 'request', { ['k'.repeat(1000)]: 1 });
    expect(problem?.errorCode).toBe('PropertyConstraintViolation');
    expect(problem!.description.length).toBeLessThanOrEqual(255);
    expect(String(problem!.details.path).length).toBeLessThanOrEqual(255);
  });

  describe('custom validators', () => {
    const rejectAll = (): ValidationProblem => ({
      errorCode: 'PropertyConstraintViolation',
      description: 'vendor says no',
      details: {},
    });

    it('given at construction, win over the schema', () => {
      const custom = new SchemaValidator({
        custom: { 'ocpp1.6': { BootNotification: { request: rejectAll, response: () => null } } },
      });
      expect(custom.validate('ocpp1.6', 'BootNotification', 'request', BOOT_16)).toEqual(rejectAll());
      // The response schema would reject this payload; the custom validator accepts it.
      expect(custom.validate('ocpp1.6', 'BootNotification', 'response', {})).toBeNull();
      // Other protocols keep their schema.
      expect(custom.validate('ocpp2.0.1', 'BootNotification', 'request', BOOT_2)).toBeNull();
    });

    it('added later, win over the schema and make their action known', () => {
      const custom = new SchemaValidator();
      expect(custom.validate('ocpp2.0.1', 'Heartbeat', 'request', {})).toBeNull();
      custom.addValidator('ocpp2.0.1', 'Heartbeat', 'request', rejectAll);
      expect(custom.validate('ocpp2.0.1', 'Heartbeat', 'request', {})).toEqual(rejectAll());
      expect(custom.validate('ocpp2.0.1', 'Heartbeat', 'response', {})?.errorCode).toBe(
        'OccurrenceConstraintViolation',
      );

      expect(custom.hasAction('ocpp2.0.1', 'VendorPing')).toBe(false);
      custom.addValidator('ocpp2.0.1', 'VendorPing', 'request', () => null);
      expect(custom.hasAction('ocpp2.0.1', 'VendorPing')).toBe(true);
      expect(custom.actions('ocpp2.0.1')).toContain('VendorPing');
    });
  });

  describe('with a schemas directory laid out like OCPP 2.1', () => {
    let dir: string;
    let v21: SchemaValidator;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ocpp-schemas-'));
      mkdirSync(join(dir, 'ocpp2.1'));
      for (const file of ['BootNotificationRequest.json', 'BootNotificationResponse.json']) {
        copyFileSync(join(SCHEMAS, 'ocpp2.0.1', file), join(dir, 'ocpp2.1', file));
      }
      // Test-only schemas (not OCA's): a SEND message has no Request/Response suffix, and a
      // keyword outside the mapped set must become FormatViolation. The BOM checks it is skipped.
      const send = { type: 'object', properties: { id: { type: 'integer', minimum: 0 } }, required: ['id'] };
      writeFileSync(join(dir, 'ocpp2.1', 'NotifyTestStream.json'), `\ufeff${JSON.stringify(send)}`);
      const oneOf = { type: 'object', oneOf: [{ required: ['a'] }, { required: ['b'] }] };
      writeFileSync(join(dir, 'ocpp2.1', 'ChoiceRequest.json'), JSON.stringify(oneOf));
      v21 = new SchemaValidator({ schemasDir: dir });
    });

    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('reads <Action>Request/<Action>Response and suffix-less SEND files', () => {
      expect(v21.actions('ocpp2.1')).toEqual(['BootNotification', 'Choice', 'NotifyTestStream']);
      expect(v21.validate('ocpp2.1', 'BootNotification', 'request', BOOT_2)).toBeNull();
      expect(v21.validate('ocpp2.1', 'BootNotification', 'response', BOOT_2_RESPONSE)).toBeNull();
      expect(v21.validate('ocpp2.1', 'NotifyTestStream', 'request', { id: 1 })).toBeNull();
      expect(v21.validate('ocpp2.1', 'NotifyTestStream', 'response', {})).toBeNull();
    });

    it('uses the 2.x spellings', () => {
      expect(v21.validate('ocpp2.1', 'NotifyTestStream', 'request', {})?.errorCode).toBe(
        'OccurrenceConstraintViolation',
      );
      expect(v21.validate('ocpp2.1', 'NotifyTestStream', 'request', { id: -1 })).toMatchObject({
        errorCode: 'PropertyConstraintViolation',
        details: { path: '/id', keyword: 'minimum', limit: 0 },
      });
      expect(v21.validate('ocpp2.1', 'Choice', 'request', { a: 1, b: 2 })).toMatchObject({
        errorCode: 'FormatViolation',
        details: { path: '', keyword: 'oneOf' },
      });
      expect(v21.validate('ocpp2.1', 'NotifyTestStream', 'request', 'x')?.errorCode).toBe('FormatViolation');
    });

    it('has nothing for protocols missing from that directory', () => {
      expect(v21.actions('ocpp1.6')).toEqual([]);
    });
  });
});
