import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { sameSecret } from './constant-time.js';

/** The sample's control API settings (injected; undefined token: the API is open). */
export const CONTROL_API = Symbol('CONTROL_API');
export interface ControlApiOptions {
  token?: string;
}

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Guards the routes that act on charge points (and list them): with a token configured they
 * need `Authorization: Bearer <token>`, checked in constant time; otherwise 401.
 */
@Injectable()
export class ControlTokenGuard implements CanActivate {
  constructor(@Inject(CONTROL_API) private readonly options: ControlApiOptions) {}

  canActivate(context: ExecutionContext): boolean {
    const expected = this.options.token;
    if (expected === undefined) return true;
    const http = context.switchToHttp();
    const header = http.getRequest<{ headers: Record<string, string | string[] | undefined> }>().headers.authorization;
    const presented = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    // One comparison whether a token came or not, so a missing header costs the same time.
    if (sameSecret(presented ?? '', expected) && presented !== undefined) return true;
    http.getResponse<{ setHeader?(name: string, value: string): unknown }>().setHeader?.('WWW-Authenticate', 'Bearer realm="control"');
    throw new UnauthorizedException({ error: 'Unauthorized', message: 'this route needs Authorization: Bearer <CONTROL_TOKEN>' });
  }
}
