import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsers } from '../parsers/index.js';
import { Dispatcher, programKey } from '../src/core/dispatch.js';

const root = join(import.meta.dirname, '..', 'parsers');

describe('parser registry', () => {
  it('registers every folder under parsers/ exactly once, by its folder name', () => {
    const folders = readdirSync(root).filter((f) => statSync(join(root, f)).isDirectory() && existsSync(join(root, f, 'parser.ts')));
    expect(parsers.map((p) => p.id).sort()).toEqual(folders.sort());
  });

  it('gives each parser at least one claimed program and no program two owners', () => {
    for (const p of parsers) expect(p.programs.length, p.id).toBeGreaterThan(0);
    expect(() => new Dispatcher(parsers)).not.toThrow();
  });

  it('routes every Postfix instance and service name to its daemon', () => {
    expect(programKey('postfix/smtpd')).toBe('postfix/smtpd');
    expect(programKey('postfix/submission/smtpd')).toBe('postfix/smtpd');
    expect(programKey('postfix-out/smtpd')).toBe('postfix/smtpd');
    expect(programKey('postfix-10.20.30.40/qmgr')).toBe('postfix/qmgr');
    expect(programKey('auth-worker(31326)')).toBe('auth-worker');
    const d = new Dispatcher(parsers);
    expect(d.parserFor('postfix/dkimmilter/smtpd')?.id).toBe('postfix-smtpd');
    expect(d.parserFor('postfix/amavisd/smtpd')?.id).toBe('postfix-smtpd');
    expect(d.parserFor('exim')).toBeNull();
  });
});
