// CLI tests run the real built binary: build once before the suite.
// Type errors are reported but do not stop the tests (`npm run typecheck`
// is its own CI step); a build that emits nothing does.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`test setup: tsc reported errors (run npm run typecheck):\n${r.stdout.slice(0, 2000)}\n`);
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) throw new Error('test setup: build produced no dist/src/cli/main.js');
}
