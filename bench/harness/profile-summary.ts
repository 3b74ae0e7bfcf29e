import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Self time per function of a V8 `.cpuprofile` (written by `node --cpu-prof`). */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  where: string;
  functionName: string;
  /** Share of the busy (non-idle) time, in percent. */
  selfPercent: number;
  selfMs: number;
}

export interface ProfileSummary {
  file: string;
  /** The measured window counted (start-up and shutdown left out), or null: the whole process life. */
  window: string | null;
  busyMs: number;
  idlePercent: number;
  /** Busy time by origin: our library, each package, Node internals, GC, ... */
  byOrigin: Array<{ origin: string; percent: number }>;
  top: HotSpot[];
  ours: HotSpot[];
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function origin(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.includes('/dist/lib/')) return 'ours (lib/)';
  if (url.includes('/dist/bench/') || url.includes('/bench/')) return 'bench app';
  return 'other';
}

const sourceMaps = new Map<string, SourceMap | null>();

function sourceMapOf(path: string): SourceMap | null {
  if (!sourceMaps.has(path)) {
    const mapFile = `${path}.map`;
    sourceMaps.set(path, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8'))) : null);
  }
  return sourceMaps.get(path)!;
}

/** Where a function starts, in the TypeScript source when the compiled file has a source map. */
function where(url: string, line: number, column: number): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const entry = (path.startsWith('/') ? sourceMapOf(path)?.findEntry(line, column) : undefined) as
    | { originalSource?: string; originalLine?: number }
    | undefined;
  if (entry?.originalSource && entry.originalLine !== undefined) {
    const original = entry.originalSource;
    const source = original.startsWith('file://') ? fileURLToPath(original) : resolve(dirname(path), original);
    return `${relative(ROOT, source)}:${entry.originalLine + 1}`;
  }
  return `${path.startsWith('/') ? relative(ROOT, path) : path}:${line + 1}`;
}

export interface ProfileWindow {
  label: string;
  fromUs: number;
  toUs: number;
}

/** The windows the bench wrote beside the profile (`<name>.windows.json`), if any. */
function windowsOf(file: string): ProfileWindow[] {
  const sidecar = file.replace(/\.cpuprofile$/, '.windows.json');
  return existsSync(sidecar) ? (JSON.parse(readFileSync(sidecar, 'utf8')) as ProfileWindow[]) : [];
}

/** One summary per measured window of the profile, or one of its whole life. */
export function summarizeProfiles(file: string, limit = 15): ProfileSummary[] {
  const windows = windowsOf(file);
  if (windows.length === 0) return [summarizeProfile(file, null, limit)];
  // A window of an earlier process whose profile this one replaced holds no sample.
  return windows.map((window) => summarizeProfile(file, window, limit)).filter((summary) => summary.busyMs > 0);
}

export function summarizeProfile(file: string, window: ProfileWindow | null, limit = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + delta);
  }
  const spots = new Map<string, { where: string; functionName: string; us: number; origin: string }>();
  const origins = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const from = origin(frame.url, frame.functionName);
    origins.set(from, (origins.get(from) ?? 0) + us);
    const key = `${frame.url}:${frame.lineNumber}:${frame.functionName}`;
    const spot = spots.get(key) ?? {
      where: where(frame.url, frame.lineNumber, frame.columnNumber),
      functionName: frame.functionName || '(anonymous)',
      us: 0,
      origin: from,
    };
    spot.us += us;
    spots.set(key, spot);
  }
  const toHotSpot = (spot: { where: string; functionName: string; us: number }): HotSpot => ({
    where: spot.where,
    functionName: spot.functionName,
    selfPercent: (spot.us / busyUs) * 100,
    selfMs: spot.us / 1000,
  });
  const sorted = [...spots.values()].sort((a, b) => b.us - a.us);
  return {
    file,
    window: window?.label ?? null,
    busyMs: busyUs / 1000,
    idlePercent: (idleUs / (busyUs + idleUs)) * 100,
    byOrigin: [...origins]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ origin: name, percent: (us / busyUs) * 100 })),
    top: sorted.slice(0, limit).map(toHotSpot),
    ours: sorted.filter((spot) => spot.origin === 'ours (lib/)').slice(0, limit).map(toHotSpot),
  };
}

export function formatProfile(summary: ProfileSummary): string {
  const lines = [
    `### ${relative(ROOT, summary.file)}${summary.window ? ` — ${summary.window}` : ''}`,
    `${summary.window ? 'this window only: ' : 'whole process life: '}` +
      `busy ${(summary.busyMs / 1000).toFixed(1)} s (idle ${summary.idlePercent.toFixed(0)}%); busy time by origin: ` +
      summary.byOrigin
        .slice(0, 8)
        .map((o) => `${o.origin} ${o.percent.toFixed(1)}%`)
        .join(', '),
    '',
    'Top self time in our code (lib/):',
    '',
    '| self % | function | where |',
    '| ---: | --- | --- |',
    ...summary.ours.map((s) => `| ${s.selfPercent.toFixed(2)} | ${s.functionName} | ${s.where} |`),
    '',
    'Top self time overall:',
    '',
    '| self % | function | where |',
    '| ---: | --- | --- |',
    ...summary.top.map((s) => `| ${s.selfPercent.toFixed(2)} | ${s.functionName} | ${s.where || '(native)'} |`),
  ];
  return lines.join('\n');
}

// `node dist/bench/harness/profile-summary.js file.cpuprofile...`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const file of process.argv.slice(2)) {
    for (const summary of summarizeProfiles(file)) process.stdout.write(`${formatProfile(summary)}\n\n`);
  }
}
