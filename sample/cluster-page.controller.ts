import { Controller, Get, Header, UseGuards } from '@nestjs/common';
import { ClusterBoard } from './cluster-board.js';
import { CLUSTER_PAGE_HTML } from './cluster-page.html.js';
import { ControlTokenGuard } from './control-token.guard.js';

/** The live cluster page (README, "Cluster page"). */
@Controller()
export class ClusterPageController {
  constructor(private readonly board: ClusterBoard) {}

  /** The page itself holds no data, so it is open; what it shows comes from the guarded state route. */
  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
  page(): string {
    return CLUSTER_PAGE_HTML;
  }

  @Get('cluster/state')
  @UseGuards(ControlTokenGuard)
  state() {
    return this.board.state();
  }
}
