import { readFileSync } from 'node:fs';
import { analyze } from './analyze.js';
import { parseOptions, UsageError } from './options.js';
import { formatReport } from './report.js';
import { runChaos } from './run.js';
import { runSelfTest } from './self-test.js';

/** `npm run chaos -- --seconds N [--transport redis|nats] [--redis standalone|cluster] [--nats single|cluster] [--seed S]`: exits 1 on any violation. */
async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => console.log(`[chaos] ${line}`);
  if (options.selfTest) {
    const ok = runSelfTest(log);
    log(ok ? 'self-test passed: the checker reports every planted violation' : 'self-test FAILED');
    return ok ? 0 : 1;
  }
  if (options.analyzeFile) {
    const { settings, records } = JSON.parse(readFileSync(options.analyzeFile, 'utf8'));
    const analysis = analyze(records, settings);
    console.log(formatReport(analysis, Number.MAX_SAFE_INTEGER));
    return analysis.violations.length > 0 ? 1 : 0;
  }
  const { analysis, canaryDetected, logDir } = await runChaos(options, log);
  console.log(`\n${formatReport(analysis)}\n`);
  if (canaryDetected === false) log('CHECKER BROKEN: a planted duplicate delivery was not reported');
  else if (canaryDetected) log('checker canary: a planted duplicate delivery was reported (the checker can fail)');
  const failed = analysis.violations.length > 0 || canaryDetected === false;
  log(failed ? `FAILED: ${analysis.violations.length} violations (seed ${options.seed}; node logs in ${logDir})` : `passed: 0 violations (seed ${options.seed})`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof UsageError ? error.message : error);
    process.exit(2);
  },
);
