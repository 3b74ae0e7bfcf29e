import { BadRequestException, Body, Controller, Get, HttpCode, NotFoundException, Param, Post, Query, UseGuards } from '@nestjs/common';
import { OcppClusterService, isOcppProtocol } from '../lib/index.js';
import type { ChargerInfo, OcppProtocol } from '../lib/index.js';
import { httpErrorFor } from './call-error.mapper.js';
import { ClusterBoard } from './cluster-board.js';
import { ControlTokenGuard } from './control-token.guard.js';

type Payload = Record<string, unknown>;

const MAX_TIMEOUT_MS = 300_000;
/** The library's bound on a delivery window (24 h). */
const MAX_DELIVER_WITHIN_MS = 86_400_000;

/** Plain decimal digits only: `Number()` would also take " 5", "0x10", "1e3" and "". */
function parseMs(raw: unknown, parameter: string, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const ms = typeof raw === 'string' && /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(ms >= 1 && ms <= max)) {
    throw new BadRequestException({
      error: 'ValidationError',
      parameter,
      description: `${parameter} must be a decimal integer from 1 to ${max}, got ${JSON.stringify(raw)}`,
    });
  }
  return ms;
}

const parseTimeout = (raw: unknown): number | undefined => parseMs(raw, 'timeoutMs', MAX_TIMEOUT_MS);

function requirePayload(body: unknown): Payload {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestException({ error: 'BadRequest', message: 'the body must be a JSON object (the call payload)' });
  }
  return body as Payload;
}

/** The control API: every route here acts on (or lists) charge points, so each needs the token. */
@Controller()
@UseGuards(ControlTokenGuard)
export class ChargersController {
  constructor(
    private readonly ocpp: OcppClusterService,
    private readonly board: ClusterBoard,
  ) {}

  @Get('chargers')
  list(): Promise<ChargerInfo[]> {
    return this.ocpp.getChargers();
  }

  @Get('chargers/:identity')
  async get(@Param('identity') identity: string): Promise<ChargerInfo> {
    const charger = await this.ocpp.getPresence(identity).catch((error) => {
      throw httpErrorFor(error);
    });
    if (!charger) throw new NotFoundException({ error: 'NotConnected', identity });
    return charger;
  }

  @Post('chargers/:identity/calls/:action')
  @HttpCode(200)
  async call(
    @Param('identity') identity: string,
    @Param('action') action: string,
    @Body() body: unknown,
    @Query('timeoutMs') timeoutMs?: unknown,
    @Query('protocol') protocol?: string,
    @Query('deliverWithinMs') deliverWithinMs?: unknown,
  ): Promise<{ result: Payload }> {
    const payload = requirePayload(body ?? {});
    // deliverWithinMs: an offline charger gets the call when it connects to any node within the window.
    const options = { timeoutMs: parseTimeout(timeoutMs), deliverWithinMs: parseMs(deliverWithinMs, 'deliverWithinMs', MAX_DELIVER_WITHIN_MS) };
    if (protocol !== undefined && !isOcppProtocol(protocol)) {
      throw new BadRequestException({ error: 'BadRequest', message: `unknown protocol ${protocol}` });
    }
    const startedAt = Date.now();
    const record = (httpStatus: number, outcome: string) =>
      this.board.record({ startedAt, identity, action, httpStatus, outcome, latencyMs: Date.now() - startedAt });
    try {
      // The action comes from the URL, so only the runtime knows it: sendRaw, whose action the
      // library still refuses (UnknownActionError → 400) when the protocol does not define it.
      const result = await this.ocpp.sendRaw(identity, protocol as OcppProtocol | undefined, action, payload, options);
      record(200, 'result');
      return { result };
    } catch (error) {
      const answer = httpErrorFor(error);
      record(answer.getStatus(), String((answer.getResponse() as { error?: unknown }).error ?? 'error'));
      throw answer;
    }
  }

  @Post('broadcast/:action')
  @HttpCode(200)
  async broadcast(@Param('action') action: string, @Body() body: unknown, @Query('timeoutMs') timeoutMs?: unknown) {
    try {
      return await this.ocpp.broadcastRaw(undefined, action, requirePayload(body ?? {}), { timeoutMs: parseTimeout(timeoutMs) });
    } catch (error) {
      if (error instanceof BadRequestException) throw error;
      throw httpErrorFor(error);
    }
  }

  /** Body `{ identities: string[], payload }` → each identity's outcome, from whichever node holds it. */
  @Post('broadcast-batch/:action')
  @HttpCode(200)
  async broadcastBatch(@Param('action') action: string, @Body() body: unknown, @Query('timeoutMs') timeoutMs?: unknown) {
    const { identities, payload } = (body ?? {}) as { identities?: unknown; payload?: unknown };
    if (!Array.isArray(identities) || identities.some((identity) => typeof identity !== 'string')) {
      throw new BadRequestException({ error: 'BadRequest', message: 'identities must be an array of strings' });
    }
    const options = { timeoutMs: parseTimeout(timeoutMs) };
    const outcomes = await this.ocpp.broadcastBatchRaw(identities, action, requirePayload(payload ?? {}), options).catch((error) => {
      throw httpErrorFor(error);
    });
    return outcomes.map((outcome) =>
      outcome.status === 'fulfilled'
        ? { identity: outcome.identity, status: 'fulfilled', result: outcome.result }
        : { identity: outcome.identity, status: 'rejected', error: httpErrorFor(outcome.error).getResponse() },
    );
  }
}
