import { Ajv, type FormatDefinition } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { rememberLastValidDateTime } from '../../lib/protocol/remembered-date-time.js';
import { SchemaValidator } from '../../lib/protocol/validator.js';

const addFormats = ((addFormatsModule as { default?: unknown }).default ?? addFormatsModule) as typeof addFormatsModule.default;

/** An ajv with ajv-formats whose original date-time check counts its runs. */
function countingAjv(): { ajv: Ajv; runs: () => number } {
  const ajv = new Ajv();
  addFormats(ajv);
  const format = ajv.formats['date-time'] as FormatDefinition<string>;
  const original = format.validate as (value: string) => boolean;
  let runs = 0;
  ajv.addFormat('date-time', {
    ...format,
    validate: (value: string) => {
      runs++;
      return original(value);
    },
  } as FormatDefinition<string>);
  return { ajv, runs: () => runs };
}

describe('remembered date-time check', () => {
  it('checks a timestamp once while it stays the last one accepted, and every other string in full', () => {
    const { ajv, runs } = countingAjv();
    rememberLastValidDateTime(ajv);
    const validate = ajv.compile({ type: 'object', properties: { at: { type: 'string', format: 'date-time' } } });
    const valid = '2026-12-07T07:00:00.123Z';

    expect(validate({ at: valid })).toBe(true);
    expect(validate({ at: valid })).toBe(true);
    expect(validate({ at: valid })).toBe(true);
    expect(runs()).toBe(1);

    // A rejected string is never remembered: it fails every time and leaves the last valid one in place.
    expect(validate({ at: 'yesterday' })).toBe(false);
    expect(validate({ at: 'yesterday' })).toBe(false);
    expect(validate({ at: '2026-02-30T07:00:00Z' })).toBe(false);
    expect(runs()).toBe(4);
    expect(validate({ at: valid })).toBe(true);
    expect(runs()).toBe(4);

    // A new valid timestamp takes the old one's place.
    expect(validate({ at: '2026-12-07T07:00:00.124Z' })).toBe(true);
    expect(validate({ at: valid })).toBe(true);
    expect(runs()).toBe(6);
  });

  it('leaves the schema validator accepting and refusing exactly what it did', () => {
    const validator = new SchemaValidator();
    const currentTime = new Date().toISOString();
    for (let i = 0; i < 3; i++) {
      expect(validator.validate('ocpp2.0.1', 'Heartbeat', 'response', { currentTime })).toBeNull();
      expect(validator.validate('ocpp2.0.1', 'Heartbeat', 'response', { currentTime: `${currentTime}x` })).toMatchObject({
        errorCode: 'PropertyConstraintViolation',
        details: { path: '/currentTime', keyword: 'format', format: 'date-time' },
      });
      expect(validator.validate('ocpp1.6', 'Heartbeat', 'response', { currentTime: '2026-13-01T00:00:00Z' })).toMatchObject({
        details: { keyword: 'format' },
      });
    }
  });
});
