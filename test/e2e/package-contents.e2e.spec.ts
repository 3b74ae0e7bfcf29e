import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

/** A checkout as `git clone` leaves it: sources only, no dist (node_modules linked, not installed). */
function freshCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ocpp-pack-'));
  for (const entry of ['lib', 'schemas', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'LICENSE', 'README.md']) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

describe('npm pack from a fresh checkout', () => {
  it('builds first and ships the library with type declarations, both entry points and the licence', () => {
    const dir = freshCheckout();
    try {
      const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts=false'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
      const files = new Set((JSON.parse(output) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path));
      for (const path of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/transport.js', 'dist/lib/transport.d.ts', 'LICENSE', 'package.json']) {
        expect(files).toContain(path);
      }
      expect([...files].filter((path) => path.startsWith('dist/') && !path.startsWith('dist/lib/'))).toEqual([]);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };
      for (const entry of ['.', './transport']) {
        expect(files).toContain(manifest.exports[entry]!.types.replace(/^\.\//, ''));
        expect(files).toContain(manifest.exports[entry]!.default.replace(/^\.\//, ''));
      }
      expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toContain('nestjs-ocpp-cluster contributors');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
