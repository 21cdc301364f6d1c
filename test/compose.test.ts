import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine runs here: check docker-compose.yml statically.
it('docker-compose.yml is valid YAML whose services all name an image or a build', () => {
  const doc = parse(readFileSync(join(import.meta.dirname, '..', 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string; build?: unknown }> };
  const services = Object.entries(doc.services);
  expect(services.length).toBeGreaterThan(0);
  for (const [name, s] of services) expect(s.image ?? s.build, name).toBeTruthy();
});
