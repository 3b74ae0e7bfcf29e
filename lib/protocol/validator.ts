import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { OcppErrorCode } from './error-codes.js';
import { InvalidOptionsError } from './errors.js';
import { isOcpp2, type OcppProtocol } from './protocol.js';
import { rememberLastValidDateTime } from './remembered-date-time.js';

export type MessageDirection = 'request' | 'response';

/** A payload that breaks its schema, ready to become a CALLERROR. */
export interface ValidationProblem {
  /** OCPP error code in the protocol's own spelling. */
  errorCode: string;
  description: string;
  details: Record<string, unknown>;
}

/** Returns null when the payload is acceptable. */
export type PayloadValidatorFn = (payload: unknown) => ValidationProblem | null;

export interface ActionValidators {
  request?: PayloadValidatorFn;
  response?: PayloadValidatorFn;
}

export interface SchemaValidatorOptions {
  /**
   * Directory holding `ocpp1.6/`, `ocpp1.6-security/`, `ocpp2.0.1/`, `ocpp2.1/`. Defaults to the
   * package's `schemas/`.
   */
  schemasDir?: string;
  /** Validators that replace the schema of an action (or cover an action that has none). */
  custom?: Partial<Record<OcppProtocol, Record<string, ActionValidators>>>;
}

// ajv-formats is CommonJS; depending on the loader its default import is the plugin or its namespace.
const addFormats = ((addFormatsModule as { default?: unknown }).default ??
  addFormatsModule) as typeof addFormatsModule.default;

const requireCjs = createRequire(import.meta.url);

/**
 * The schema folders of each protocol. OCPP 1.6 connections also carry the Security Whitepaper's
 * messages, which the OCA publishes as a separate set; it stays in its own folder, as published.
 */
export const SCHEMA_FOLDERS: Readonly<Record<OcppProtocol, readonly string[]>> = {
  'ocpp1.6': ['ocpp1.6', 'ocpp1.6-security'],
  'ocpp2.0.1': ['ocpp2.0.1'],
  'ocpp2.1': ['ocpp2.1'],
};

const DRAFT_04 = /^https?:\/\/json-schema\.org\/draft-04\/schema#?$/;

/** 2.x errorDescription is capped at 255 characters; 1.6 gets the same cap for simplicity. */
const MAX_DESCRIPTION = 255;
/** Property names come from the charger; keep them from bloating an error frame. */
const MAX_DETAIL_STRING = 255;

const PROPERTY_CONSTRAINT_KEYWORDS: ReadonlySet<string> = new Set([
  'maxLength',
  'minLength',
  'enum',
  'const',
  'maximum',
  'minimum',
  'exclusiveMaximum',
  'exclusiveMinimum',
  'multipleOf',
  'pattern',
  'format',
  'additionalProperties',
  'additionalItems',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
]);

interface SchemaFiles {
  request?: string;
  response?: string;
}

interface ProtocolSchemas {
  readonly ajv: Ajv;
  /** action → schema file per direction, from the directory listing. */
  readonly files: ReadonlyMap<string, SchemaFiles>;
  /** Per direction, action → compiled validator: no key string is built per message. */
  readonly compiled: Readonly<Record<MessageDirection, Map<string, ValidateFunction>>>;
}

/**
 * Validates OCPP payloads against the OCA JSON schemas shipped in `schemas/`.
 *
 * A protocol's directory is listed the first time it is used and each schema is compiled the
 * first time it is needed (or all at once by `warmUp`), then kept. The files on disk are never
 * changed: where ajv needs a schema in another form (draft-04), a copy in memory is adapted.
 */
export class SchemaValidator {
  private readonly schemasDir: string;
  private readonly protocols = new Map<OcppProtocol, ProtocolSchemas>();
  private readonly custom = new Map<OcppProtocol, Map<string, ActionValidators>>();

  constructor(options: SchemaValidatorOptions = {}) {
    this.schemasDir = options.schemasDir === undefined ? findSchemasDir() : checkDir(options.schemasDir);
    for (const [protocol, byAction] of Object.entries(options.custom ?? {}) as [
      OcppProtocol,
      Record<string, ActionValidators> | undefined,
    ][]) {
      for (const [action, fns] of Object.entries(byAction ?? {})) {
        if (fns.request) this.addValidator(protocol, action, 'request', fns.request);
        if (fns.response) this.addValidator(protocol, action, 'response', fns.response);
      }
    }
  }

  /**
   * Checks `payload` of `action` in `direction`. A custom validator, if any, decides alone.
   * Returns null when the payload is acceptable, and also when the action has no schema:
   * answering an unknown action (NotImplemented) is the dispatcher's job, see `hasAction`.
   */
  validate(
    protocol: OcppProtocol,
    action: string,
    direction: MessageDirection,
    payload: unknown,
  ): ValidationProblem | null {
    const customFn = this.custom.get(protocol)?.get(action)?.[direction];
    if (customFn) return customFn(payload);

    const validateFn = this.compiled(protocol, action, direction);
    if (!validateFn) return null;

    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      return {
        errorCode: formatViolation(protocol),
        description: `payload must be a JSON object, got ${describeType(payload)}`,
        details: { path: '', keyword: 'type' },
      };
    }
    if (validateFn(payload)) return null;
    const error = validateFn.errors?.[0];
    return error
      ? toProblem(protocol, error)
      : { errorCode: formatViolation(protocol), description: 'payload is invalid', details: {} };
  }

  /** True when the action has a schema or a custom validator in either direction. */
  hasAction(protocol: OcppProtocol, action: string): boolean {
    return this.load(protocol).files.has(action) || this.custom.get(protocol)?.has(action) === true;
  }

  /** True when a custom validator declares this action (a vendor extension, or a schema replaced). */
  hasCustom(protocol: OcppProtocol, action: string): boolean {
    return this.custom.get(protocol)?.has(action) === true;
  }

  /** Known action names (schema or custom validator), sorted. */
  actions(protocol: OcppProtocol): string[] {
    const names = new Set(this.load(protocol).files.keys());
    for (const action of this.custom.get(protocol)?.keys() ?? []) names.add(action);
    return [...names].sort();
  }

  /** Registers a validator that takes the place of the schema for this action and direction. */
  addValidator(
    protocol: OcppProtocol,
    action: string,
    direction: MessageDirection,
    fn: PayloadValidatorFn,
  ): void {
    let byAction = this.custom.get(protocol);
    if (!byAction) this.custom.set(protocol, (byAction = new Map()));
    const entry = byAction.get(action) ?? {};
    entry[direction] = fn;
    byAction.set(action, entry);
  }

  /** Compiles every schema of `protocol` now, so that start-up, not the first message, pays. */
  warmUp(protocol: OcppProtocol): void {
    for (const [action, files] of this.load(protocol).files) {
      if (files.request) this.compiled(protocol, action, 'request');
      if (files.response) this.compiled(protocol, action, 'response');
    }
  }

  private compiled(
    protocol: OcppProtocol,
    action: string,
    direction: MessageDirection,
  ): ValidateFunction | undefined {
    const schemas = this.load(protocol);
    const byAction = schemas.compiled[direction];
    const cached = byAction.get(action);
    if (cached !== undefined) return cached;
    const file = schemas.files.get(action)?.[direction];
    // Only names with a schema file are remembered: a charger cannot grow the map with made-up actions.
    if (!file) return undefined;
    const validateFn = schemas.ajv.compile(prepareSchema(readSchema(file)));
    byAction.set(action, validateFn);
    return validateFn;
  }

  private load(protocol: OcppProtocol): ProtocolSchemas {
    let schemas = this.protocols.get(protocol);
    if (!schemas) {
      schemas = {
        ajv: createAjv(),
        files: listSchemaFiles(
          SCHEMA_FOLDERS[protocol].map((folder) => join(this.schemasDir, folder)),
          isOcpp2(protocol),
        ),
        compiled: { request: new Map(), response: new Map() },
      };
      this.protocols.set(protocol, schemas);
    }
    return schemas;
  }
}

function createAjv(): Ajv {
  // No code optimisation pass: it doubles the compile time of the ~390 OCA schemas that every
  // start-up pays (warmUp), and the validators it yields answer the same, no measurably faster.
  const ajv = new Ajv({ strict: false, allErrors: false, code: { optimize: false } });
  addFormats(ajv);
  rememberLastValidDateTime(ajv);
  // 2.x schemas declare draft-06, which ajv 8 reads once its meta-schema is registered.
  ajv.addMetaSchema(requireCjs('ajv/dist/refs/json-schema-draft-06.json') as AnySchemaObject);
  return ajv;
}

/**
 * Maps the files of one protocol's directories to actions. 1.6: `<Action>.json` and
 * `<Action>Response.json`. 2.x: `<Action>Request.json` and `<Action>Response.json`; a file with
 * neither suffix (a 2.1 SEND message such as NotifyPeriodicEventStream) is a request schema.
 */
function listSchemaFiles(dirs: readonly string[], ocpp2: boolean): ReadonlyMap<string, SchemaFiles> {
  const files = new Map<string, SchemaFiles>();
  for (const dir of dirs) if (existsSync(dir)) addSchemaFiles(files, dir, ocpp2);
  return files;
}

function addSchemaFiles(files: Map<string, SchemaFiles>, dir: string, ocpp2: boolean): void {
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    const base = name.slice(0, -'.json'.length);
    let action = base;
    let direction: MessageDirection = 'request';
    if (base.endsWith('Response')) {
      action = base.slice(0, -'Response'.length);
      direction = 'response';
    } else if (ocpp2 && base.endsWith('Request')) {
      action = base.slice(0, -'Request'.length);
    }
    const entry = files.get(action) ?? {};
    // Two folders of one protocol defining the same message would make the choice arbitrary.
    if (entry[direction] !== undefined) {
      throw new InvalidOptionsError('schemasDir', `${action} ${direction} is defined twice: ${entry[direction]} and ${join(dir, name)}`);
    }
    entry[direction] = join(dir, name);
    files.set(action, entry);
  }
}

function readSchema(file: string): AnySchemaObject {
  const text = readFileSync(file, 'utf8');
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as AnySchemaObject;
}

/**
 * Returns the schema in a form ajv 8 compiles. Only draft-04 needs a change: ajv 8 has no
 * draft-04 meta-schema, so the copy drops `$schema` and carries its `id` as `$id`. The OCA 1.6
 * schemas use no keyword whose meaning changed after draft-04 (such as a boolean exclusiveMaximum).
 */
function prepareSchema(schema: AnySchemaObject): AnySchemaObject {
  const declared = schema.$schema;
  if (typeof declared !== 'string' || !DRAFT_04.test(declared)) return schema;
  const { $schema: _drop, id, ...rest } = schema;
  return typeof id === 'string' ? { $id: id, ...rest } : rest;
}

function toProblem(protocol: OcppProtocol, error: ErrorObject): ValidationProblem {
  const at = error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const property = String(params.missingProperty);
      return problem(
        occurrenceViolation(protocol),
        `${quote(property)} is required${at ? ` in ${quote(at)}` : ''}`,
        { path: `${at}/${escapePointer(property)}`, keyword: 'required' },
      );
    }
    case 'type':
      return problem('TypeConstraintViolation', `${where(at)} must be ${String(params.type)}`, {
        path: at,
        keyword: 'type',
        expected: params.type,
      });
    case 'additionalProperties': {
      const property = String(params.additionalProperty);
      const path = `${at}/${escapePointer(property)}`;
      return problem('PropertyConstraintViolation', `${quote(path)} is not allowed`, {
        path,
        keyword: 'additionalProperties',
      });
    }
    default:
      return problem(
        PROPERTY_CONSTRAINT_KEYWORDS.has(error.keyword) ? 'PropertyConstraintViolation' : formatViolation(protocol),
        `${where(at)} ${error.message ?? 'is invalid'}`,
        { path: at, keyword: error.keyword, ...constraintParams(params) },
      );
  }
}

function problem(errorCode: OcppErrorCode, description: string, details: Record<string, unknown>): ValidationProblem {
  if (typeof details.path === 'string') details.path = truncate(details.path, MAX_DETAIL_STRING);
  return { errorCode, description: truncate(description, MAX_DESCRIPTION), details };
}

/** Copies the limit of a failed constraint (all of it comes from the schema, not the payload). */
function constraintParams(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['limit', 'allowedValues', 'allowedValue', 'format', 'pattern', 'multipleOf']) {
    if (params[key] !== undefined) out[key] = params[key];
  }
  return out;
}

function occurrenceViolation(protocol: OcppProtocol): OcppErrorCode {
  return isOcpp2(protocol) ? 'OccurrenceConstraintViolation' : 'OccurenceConstraintViolation';
}

function formatViolation(protocol: OcppProtocol): OcppErrorCode {
  return isOcpp2(protocol) ? 'FormatViolation' : 'FormationViolation';
}

function where(path: string): string {
  return path ? quote(path) : 'payload';
}

function quote(text: string): string {
  return `"${truncate(text, MAX_DETAIL_STRING)}"`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/** The `schemas/` of this package: the nearest ancestor holding both it and package.json. */
function findSchemasDir(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'schemas');
    if (isDirectory(candidate) && existsSync(join(dir, 'package.json'))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new InvalidOptionsError('schemasDir', `no schemas/ directory found above ${start}`);
}

function checkDir(dir: string): string {
  const absolute = resolve(dir);
  if (!isDirectory(absolute)) throw new InvalidOptionsError('schemasDir', `${absolute} is not a directory`);
  return absolute;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
