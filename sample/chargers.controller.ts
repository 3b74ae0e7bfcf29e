import { BadRequestException, Body, Controller, Get, HttpCode, NotFoundException, Param, Post, Query } from '@nestjs/common';
import { OcppClusterService, isOcppProtocol } from '../lib/index.js';
import type { ChargerInfo, OcppProtocol } from '../lib/index.js';
import { httpErrorFor } from './call-error.mapper.js';

type Payload = Record<string, unknown>;

function parseTimeout(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const timeoutMs = Number(raw);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 300_000) {
    throw new BadRequestException({ error: 'BadRequest', message: 'timeoutMs must be an integer between 1 and 300000' });
  }
  return timeoutMs;
}

function requirePayload(body: unknown): Payload {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestException({ error: 'BadRequest', message: 'the body must be a JSON object (the call payload)' });
  }
  return body as Payload;
}

@Controller()
export class ChargersController {
  constructor(private readonly ocpp: OcppClusterService) {}

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
    @Query('timeoutMs') timeoutMs?: string,
    @Query('protocol') protocol?: string,
  ): Promise<{ result: Payload }> {
    const payload = requirePayload(body ?? {});
    const options = { timeoutMs: parseTimeout(timeoutMs) };
    if (protocol !== undefined && !isOcppProtocol(protocol)) {
      throw new BadRequestException({ error: 'BadRequest', message: `unknown protocol ${protocol}` });
    }
    try {
      const result = protocol
        ? await this.ocpp.sendToClient(identity, protocol as OcppProtocol, action, payload, options)
        : await this.ocpp.sendToClient(identity, action, payload, options);
      return { result };
    } catch (error) {
      throw httpErrorFor(error);
    }
  }

  @Post('broadcast/:action')
  @HttpCode(200)
  async broadcast(@Param('action') action: string, @Body() body: unknown, @Query('timeoutMs') timeoutMs?: string) {
    try {
      return await this.ocpp.broadcast(action, requirePayload(body ?? {}), { timeoutMs: parseTimeout(timeoutMs) });
    } catch (error) {
      if (error instanceof BadRequestException) throw error;
      throw httpErrorFor(error);
    }
  }

  /** Body `{ identities: string[], payload }` → each identity's outcome, from whichever node holds it. */
  @Post('broadcast-batch/:action')
  @HttpCode(200)
  async broadcastBatch(@Param('action') action: string, @Body() body: unknown, @Query('timeoutMs') timeoutMs?: string) {
    const { identities, payload } = (body ?? {}) as { identities?: unknown; payload?: unknown };
    if (!Array.isArray(identities) || identities.some((identity) => typeof identity !== 'string')) {
      throw new BadRequestException({ error: 'BadRequest', message: 'identities must be an array of strings' });
    }
    const options = { timeoutMs: parseTimeout(timeoutMs) };
    const outcomes = await this.ocpp.broadcastBatch(identities, action, requirePayload(payload ?? {}), options).catch((error) => {
      throw httpErrorFor(error);
    });
    return outcomes.map((outcome) =>
      outcome.status === 'fulfilled'
        ? { identity: outcome.identity, status: 'fulfilled', result: outcome.result }
        : { identity: outcome.identity, status: 'rejected', error: httpErrorFor(outcome.error).getResponse() },
    );
  }
}
