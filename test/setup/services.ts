// Global setup of the real-service suite (vitest.services.config.ts): build
// dist like the default suite does, then make sure Kafka, ClickHouse and
// Redis answer on loopback. A service that cannot be started fails the run
// with the script's message (service name and log file); nothing is skipped.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import build from './build.js';

export default function setup(): void {
  build();
  const script = join(import.meta.dirname, '..', '..', 'scripts', 'services.sh');
  try {
    execFileSync('bash', [script, 'up'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
  } catch (err) {
    throw new Error(`test setup: 'bash scripts/services.sh up' failed (see its message above): ${(err as Error).message}`);
  }
}
