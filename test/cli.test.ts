/** The real `floodgate` binary (built by test/setup/build.ts), as a user runs it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'fg-cli-'));

function run(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  const out = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const errLines = r.stderr.split('\n').filter(Boolean);
  const last = errLines.at(-1);
  const summary = last?.startsWith('{') ? (JSON.parse(last) as Record<string, number>) : undefined;
  return { code: r.status, out, stderr: r.stderr, summary };
}

const submission = [
  'Nov 27 10:00:01 mx1 postfix/submission/smtpd[100]: connect from unknown[203.0.113.9]',
  'Nov 27 10:00:02 mx1 postfix/submission/smtpd[100]: 3F2A1C0B4E: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=mallory@example.com',
  'Nov 27 10:00:02 mx1 postfix/cleanup[101]: 3F2A1C0B4E: message-id=<abc@example.com>',
  'Nov 27 10:00:02 mx1 postfix/qmgr[102]: 3F2A1C0B4E: from=<x@yahoo.com.tw>, size=1200, nrcpt=1 (queue active)',
  'Nov 27 10:00:03 mx1 postfix/smtp[103]: 3F2A1C0B4E: to=<victim@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.1.27]:25, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)',
  'Nov 27 10:00:03 mx1 postfix/qmgr[102]: 3F2A1C0B4E: removed',
].join('\n') + '\n';

describe('floodgate CLI', () => {
  it('prints help and exits 0', () => {
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('parse');
    const p = spawnSync(process.execPath, [bin, 'parse', '--help'], { encoding: 'utf8' });
    expect(p.status).toBe(0);
    expect(p.stdout).toContain('--messages');
  });

  it('parses a file into events with sources, and a summary on stderr', () => {
    const f = join(dir, 'mail.log');
    writeFileSync(f, submission);
    const r = run(['parse', f, '--year', '2026']);
    expect(r.code).toBe(0);
    expect(r.out.every((o) => o.type === 'event')).toBe(true);
    const client = r.out.find((o) => o.kind === 'smtp.client')!;
    expect(client).toMatchObject({ account: 'mallory@example.com', ip: '203.0.113.9', queueId: '3F2A1C0B4E', host: 'mx1', ts: Date.UTC(2026, 10, 27, 10, 0, 2) });
    expect(client.src).toEqual({ file: f, offset: submission.indexOf('Nov 27 10:00:02 mx1 postfix/submission') });
    expect(r.summary).toMatchObject({ type: 'summary', lines: 6, unknown: 0, malformed: 0, messages: 0 });
    expect(r.summary!.events).toBe(r.out.length);
  });

  it('correlates messages with --messages', () => {
    const r = run(['parse', '-', '--year', '2026', '--messages-only'], submission);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatchObject({
      type: 'message',
      host: 'mx1',
      queueId: '3F2A1C0B4E',
      clientIp: '203.0.113.9',
      saslUser: 'mallory@example.com',
      sender: 'x@yahoo.com.tw',
      messageId: '<abc@example.com>',
      size: 1200,
      recipients: [{ address: 'victim@gmail.com', status: 'sent', dsn: '2.0.0', relay: 'gmail-smtp-in.l.google.com[142.250.1.27]:25' }],
      firstTs: Date.UTC(2026, 10, 27, 10, 0, 2),
      lastTs: Date.UTC(2026, 10, 27, 10, 0, 3),
    });
    expect(r.summary).toMatchObject({ messages: 1 });
  });

  it('reads gzip from stdin and counts garbage without losing good lines', () => {
    const mixed = 'garbage line\n' + submission + '\u0000\u0001\u0002\n' + 'Nov 27 10:00:09 mx1 postfix/qmgr[102]: 4B1C2D3E4F: removed\n';
    const r = run(['parse', '-', '--stats'], gzipSync(mixed));
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(0);
    expect(r.summary).toMatchObject({ lines: 9, malformed: 2, unknown: 0 });
  });

  it('keeps going past an unreadable file, says which and exits 1', () => {
    const f = join(dir, 'ok.log');
    writeFileSync(f, submission);
    const r = run(['parse', join(dir, 'nope.log'), f, '--stats']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nope.log: cannot read');
    expect(r.stderr).toContain('[FG_INPUT_UNREADABLE]');
    expect(r.summary).toMatchObject({ lines: 6, inputErrors: 1 });
  });

  it('refuses an xz-compressed file, saying what to run instead, and still reads the others', () => {
    const f = join(dir, 'ok2.log');
    writeFileSync(f, submission);
    const xz = join(dir, 'mail.log.1.xz');
    writeFileSync(xz, Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(64)]));
    const r = run(['parse', xz, f, '--stats']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`xz-compressed: floodgate reads plain and gzip files; decompress it into a pipe instead: xz -dc ${xz} | floodgate replay -`);
    expect(r.stderr).toContain('[FG_INPUT_UNREADABLE]');
    expect(r.summary).toMatchObject({ lines: 6, malformed: 0, inputErrors: 1 });
  });

  it('rejects bad options with a usage error naming the option', () => {
    for (const [args, text] of [
      [['parse', '--tz', 'Mars/Olympus'], '--tz'],
      [['parse', '--format', 'xml'], '--format'],
      [['parse', '--year', '26'], '--year'],
      [['parse', '--bogus'], 'bogus'],
      [['frobnicate'], 'unknown command'],
    ] as const) {
      const r = run([...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(text);
      expect(r.stderr).toContain('[FG_USAGE]');
    }
  });

  it('keeps hostile field values as data in JSON output', () => {
    const evil = ['$(reboot)@x.com', '`id`@x.com', '"quoted"@x.com', "a'b@x.com", 'cr#015#012lf@x.com', 'back\\slash@x.com'];
    const lines = evil.map((a, i) => `Nov 27 10:00:0${i} mx1 postfix/qmgr[1]: 5A5A5A5A${i}0: from=<${a}>, size=1, nrcpt=1 (queue active)`).join('\n');
    const r = run(['parse', '-', '--year', '2026'], lines + '\n');
    expect(r.code).toBe(0);
    expect(r.out.map((o) => o.sender)).toEqual(evil);
  });
});
