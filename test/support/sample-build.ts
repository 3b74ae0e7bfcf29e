import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SAMPLE_MAIN = join(ROOT, 'dist/sample/main.js');
const SAMPLE_SOURCES = [join(ROOT, 'lib'), join(ROOT, 'sample')];

function newestTs(dir: string): { path: string; mtimeMs: number } | null {
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory() ? newestTs(path) : entry.name.endsWith('.ts') ? { path, mtimeMs: statSync(path).mtimeMs } : null;
    if (candidate && (!newest || candidate.mtimeMs > newest.mtimeMs)) newest = candidate;
  }
  return newest;
}

/**
 * Why `built` cannot be trusted: it is missing, or a .ts file under `sourceDirs` is newer
 * (mtime). Null when it is up to date.
 */
export function staleReason(built: string, sourceDirs: readonly string[]): string | null {
  if (!existsSync(built)) return `${built} is missing`;
  const builtAt = statSync(built).mtimeMs;
  for (const dir of sourceDirs) {
    const newest = existsSync(dir) ? newestTs(dir) : null;
    if (newest && newest.mtimeMs > builtAt) return `${newest.path} is newer than ${built}`;
  }
  return null;
}

let checked = false;

/**
 * Rebuilds dist/sample (once per test process) when it is older than its sources, so a spec never
 * silently runs an old build; a failed build fails the spec with the compiler's output.
 */
export function ensureSampleBuilt(): void {
  if (checked) return;
  const reason = staleReason(SAMPLE_MAIN, SAMPLE_SOURCES);
  if (reason) {
    console.log(`dist/sample is stale (${reason}): running "npm run build:sample"`);
    try {
      execFileSync('npm', ['run', 'build:sample'], { cwd: ROOT, stdio: 'pipe', encoding: 'utf8' });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`"npm run build:sample" failed, so the sample cannot be tested:\n${stdout}${stderr}`, { cause: error });
    }
    const still = staleReason(SAMPLE_MAIN, SAMPLE_SOURCES);
    if (still) throw new Error(`"npm run build:sample" succeeded but dist/sample is still stale (${still})`);
  }
  checked = true;
}
