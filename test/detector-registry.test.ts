import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectors } from '../detectors/index.js';
import { findingSchema } from '../src/detect/finding.js';

const dir = join(import.meta.dirname, '..', 'detectors');
// Shared helpers live beside the detectors without being detectors.
const helpers = new Set(['index.ts', 'types.ts', 'account-util.ts', 'volume-util.ts']);

describe('detector registry', () => {
  it('registers every detector file exactly once, under its file name', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !helpers.has(f));
    expect(detectors.map((d) => `${d.id}.ts`).sort()).toEqual(files.sort());
  });

  it('gives every detector a description, inputs, a test file and a config whose defaults parse from {}', () => {
    const files = new Set(readdirSync(dir));
    for (const d of detectors) {
      expect(d.description.length, d.id).toBeGreaterThan(20);
      expect(d.events.length > 0 || d.messages || d.submissions === true, d.id).toBe(true);
      expect(files.has(`${d.id}.test.ts`), `${d.id}.test.ts`).toBe(true);
      expect(() => d.config.parse({}), d.id).not.toThrow();
    }
    expect(findingSchema.shape.detector).toBeDefined();
  });
});
