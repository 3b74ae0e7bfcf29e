import type { Analysis, FaultSummary } from './analyze.js';
import type { OutcomeKind } from './records.js';

const COLUMNS: Array<{ title: string; kinds: OutcomeKind[] }> = [
  { title: 'result', kinds: ['result'] },
  { title: 'notConn', kinds: ['not-connected'] },
  { title: 'notConn~', kinds: ['not-connected-maybe'] },
  { title: 'tmo sent', kinds: ['timeout-sent'] },
  { title: 'tmo unsent', kinds: ['timeout-not-sent', 'timeout-unknown'] },
  { title: 'unavail', kinds: ['unavailable', 'unavailable-sent'] },
  { title: 'other', kinds: ['call-error', 'queue-full', 'bad-request', 'internal-error', 'other-http'] },
  { title: 'refused', kinds: ['refused'] },
  { title: 'no answer', kinds: ['lost', 'hung'] },
];

/** The per-fault table, the violation counts by kind, and the first violations in detail. */
export function formatReport(analysis: Analysis, maxDetails = 20): string {
  const header = ['fault', 'injected', 'calls', ...COLUMNS.map((column) => column.title), 'violations'];
  const rows = analysis.summaries.map((summary) => [
    summary.fault,
    String(summary.injected),
    String(summary.calls),
    ...COLUMNS.map((column) => String(count(summary, column.kinds))),
    String(summary.violations),
  ]);
  const total = ['total', ...[1, 2].map((i) => String(sum(rows, i))), ...COLUMNS.map((_, i) => String(sum(rows, i + 3))), String(analysis.violations.length)];
  const table = [header, ...rows, total];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...[...rows, total].map(line)];

  if (analysis.violations.length > 0) {
    const byKind = new Map<string, Map<string, number>>();
    for (const violation of analysis.violations) {
      const faults = byKind.get(violation.kind) ?? new Map<string, number>();
      faults.set(violation.fault, (faults.get(violation.fault) ?? 0) + 1);
      byKind.set(violation.kind, faults);
    }
    out.push('', 'violations by kind (and fault):');
    for (const [kind, faults] of byKind) {
      const total = [...faults.values()].reduce((a, b) => a + b, 0);
      out.push(`  ${kind}: ${total} (${[...faults].map(([fault, n]) => `${fault} ${n}`).join(', ')})`);
    }
    out.push('', `first ${Math.min(maxDetails, analysis.violations.length)} of ${analysis.violations.length} violations:`);
    for (const violation of analysis.violations.slice(0, maxDetails)) out.push(`  [${violation.kind}] (${violation.fault}) ${violation.detail}`);
  }
  return out.join('\n');
}

function count(summary: FaultSummary, kinds: OutcomeKind[]): number {
  return kinds.reduce((total, kind) => total + (summary.outcomes[kind] ?? 0), 0);
}

function sum(rows: string[][], index: number): number {
  return rows.reduce((total, row) => total + Number(row[index]), 0);
}
