import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { staleReason } from '../support/sample-build.js';

describe('staleReason (is dist/sample older than its sources?)', () => {
  let root: string;
  let built: string;
  let source: string;
  const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sample-build-'));
    mkdirSync(join(root, 'lib/cluster'), { recursive: true });
    mkdirSync(join(root, 'sample'));
    mkdirSync(join(root, 'dist/sample'), { recursive: true });
    source = join(root, 'lib/cluster/node.ts');
    built = join(root, 'dist/sample/main.js');
    writeFileSync(source, 'export {};\n');
    writeFileSync(join(root, 'sample/main.ts'), 'export {};\n');
    writeFileSync(join(root, 'lib/cluster/notes.md'), 'not a source\n');
    writeFileSync(built, '');
    for (const path of [source, join(root, 'sample/main.ts'), join(root, 'lib/cluster/notes.md')]) utimesSync(path, at(10), at(10));
    utimesSync(built, at(20), at(20));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const dirs = () => [join(root, 'lib'), join(root, 'sample')];

  it('is null when the build is newer than every .ts file', () => {
    expect(staleReason(built, dirs())).toBeNull();
  });

  it('names a nested .ts file touched after the build', () => {
    utimesSync(source, at(30), at(30));
    expect(staleReason(built, dirs())).toBe(`${source} is newer than ${built}`);
  });

  it('ignores files that are not .ts', () => {
    utimesSync(join(root, 'lib/cluster/notes.md'), at(30), at(30));
    expect(staleReason(built, dirs())).toBeNull();
  });

  it('says the build is missing', () => {
    rmSync(built);
    expect(staleReason(built, dirs())).toBe(`${built} is missing`);
  });
});
