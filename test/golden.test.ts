/**
 * Golden tests: every parsers/<name>/fixtures/<case>.log is parsed and its
 * events compared with <case>.golden.jsonl. Each fixture line must belong to
 * that folder's parser and be recognised, and every event must pass the zod
 * schema. Regenerate after an intended change with `npm run golden:update`
 * and review the diff.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsers } from '../parsers/index.js';
import { Dispatcher, ParseStatus } from '../src/core/dispatch.js';
import { eventSchema } from '../src/core/events.js';
import { parseText } from './helpers/parse.js';

const root = join(import.meta.dirname, '..', 'parsers');
const update = process.env.UPDATE_GOLDEN === '1';
const dispatcher = new Dispatcher(parsers);

for (const parser of parsers) {
  const dir = join(root, parser.id, 'fixtures');
  const cases = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.log')) : [];
  describe(`parser ${parser.id}`, () => {
    it('has at least one golden fixture', () => {
      expect(cases.length).toBeGreaterThan(0);
    });
    for (const file of cases) {
      it(`matches ${file}`, () => {
        const text = readFileSync(join(dir, file), 'utf8');
        const { events, lines } = parseText(text, { file });
        for (const l of lines) {
          expect(l.record, `envelope of: ${l.line}`).toBeDefined();
          expect(dispatcher.parserFor(l.record!.program)?.id, `owner of: ${l.line}`).toBe(parser.id);
          expect(l.status, `recognised: ${l.line}`).toBe(ParseStatus.Recognised);
        }
        for (const e of events) expect(eventSchema.safeParse(e).error).toBeUndefined();
        const actual = events.map((e) => JSON.stringify(e)).join('\n') + '\n';
        const goldenPath = join(dir, file.replace(/\.log$/, '.golden.jsonl'));
        if (update) writeFileSync(goldenPath, actual);
        expect(existsSync(goldenPath), `${goldenPath} missing: run npm run golden:update`).toBe(true);
        expect(actual).toBe(readFileSync(goldenPath, 'utf8'));
      });
    }
  });
}
