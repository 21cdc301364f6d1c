// Holding and releasing an account's queued mail against postqueue/postsuper
// stand-ins: postsuper must get exactly the right ids, on stdin.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { heldQueueIds, parsePostqueueJson, selectMessages, partitionQueueIds } from '../../src/actions/index.js';
import { bin, standinActuator, standinLog } from './helpers.js';

const logs: Array<ReturnType<typeof standinLog>> = [];
function newLog() {
  const l = standinLog();
  logs.push(l);
  return l;
}
afterEach(() => {
  for (const l of logs.splice(0)) l.cleanup();
});

const postqueue = bin('postqueue');
const postsuper = bin('postsuper');

describe('parsePostqueueJson', () => {
  it('parses good lines, counts and skips malformed ones', () => {
    const text = [
      '{"queue_name":"active","queue_id":"ABCDE1","sender":"a@x.y","recipients":[{"address":"r@z.w"}],"arrival_time":1,"message_size":10}',
      'not json',
      '{"queue_name":"active","queue_id":"bad id","sender":"a@x.y","recipients":[]}',
      '{"queue_name":"active","sender":"a@x.y"}',
      '',
      '{"queue_name":"hold","queue_id":"ABCDE2","sender":"","recipients":[{"address":"r@z.w","delay_reason":"x"}]}',
    ].join('\n');
    const r = parsePostqueueJson(text);
    expect(r.malformed).toBe(3);
    expect(r.messages).toEqual([
      { queueName: 'active', queueId: 'ABCDE1', arrivalTime: 1, size: 10, sender: 'a@x.y', recipients: ['r@z.w'] },
      { queueName: 'hold', queueId: 'ABCDE2', sender: '', recipients: ['r@z.w'] },
    ]);
  });

  it('selects by account, forged sender or queue id; not the null sender; already held apart', () => {
    const m = (queueId: string, sender: string, queueName = 'active') => ({ queueName, queueId, sender, recipients: [] });
    const sel = selectMessages([m('AAAAA1', 'A@X.Y'), m('AAAAA2', 'forged@z.tw'), m('AAAAA3', 'other@x.y'), m('AAAAA4', ''), m('AAAAA5', 'a@x.y', 'hold'), m('AAAAA6', 'other@x.y')], {
      account: 'a@x.y',
      senders: ['Forged@Z.tw'],
      queueIds: ['AAAAA6'],
    });
    expect(sel).toEqual({ hold: ['AAAAA1', 'AAAAA2', 'AAAAA6'], alreadyHeld: ['AAAAA5'] });
  });

  it('refuses queue ids that are not 5–24 letters and digits', () => {
    expect(partitionQueueIds(['ABCDE', '4F2A31C0B1', '3kx9Lz1qYwzABCd', 'ABCD', 'A'.repeat(25), 'ABC;rm', '-h', 'ABCDE\n', 42, 'ABCDE'])).toEqual({ valid: ['ABCDE', '4F2A31C0B1', '3kx9Lz1qYwzABCd'], invalid: 6 });
  });
});

describe('heldQueueIds: what the audit trail says is on hold', () => {
  it('real, successful holds since the last unlock, less what releases freed; never an id that is not one', () => {
    const r = (action: string, queueIds: unknown, o: { ok?: boolean; dryRun?: boolean } = {}) => ({ action, ok: o.ok ?? true, dryRun: o.dryRun ?? false, data: { queueIds } });
    expect(
      heldQueueIds([
        r('hold', ['AAAAA1']), // an earlier episode, ended by the unlock below
        r('unlock', []),
        r('hold', ['BBBBB1', 'BBBBB2', 'bad;id', 7]),
        r('hold', ['CCCCC1'], { dryRun: true }),
        r('hold', ['DDDDD1'], { ok: false }),
        r('release', ['BBBBB1']),
        r('release', ['BBBBB2'], { ok: false }),
        r('lock', ['EEEEE1']),
        r('hold', 'not a list'),
      ]),
    ).toEqual(['BBBBB2']);
    expect(heldQueueIds([r('hold', ['AAAAA1']), r('unlock', [], { dryRun: true })])).toEqual(['AAAAA1']); // a dry-run unlock ends nothing
  });
});

describe('hold and release', () => {
  it('holds the account’s and the forged senders’ mail: postsuper -h - gets exactly those ids on stdin', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    const r = await actuator.hold('alice@example.com', { senders: ['random@yahoo.com.tw'], queueIds: ['3kx9Lz1qYwzABCd', 'bad;id'], reasons: ['forged-sender'] });
    const runs = log.runs();
    expect(runs.map((x) => [x.prog, x.argv])).toEqual([
      ['postqueue', ['-j']],
      ['postsuper', ['-h', '-']],
    ]);
    // Alice@Example.com (case-insensitive), the forged sender, the named id; not bob; not the one already on hold.
    expect(runs[1]?.stdin).toBe('4F2A31C0B1\n4F2A31C0B2\n3kx9Lz1qYwzABCd\n');
    expect(r).toMatchObject({
      action: 'hold',
      backend: 'postfix',
      ok: true,
      changed: true,
      reason: ['forged-sender'],
      command: [postsuper, '-h', '-'],
      reads: [[postqueue, '-j']],
      data: { queueIds: ['4F2A31C0B1', '4F2A31C0B2', '3kx9Lz1qYwzABCd'], alreadyHeld: ['4F2A31C0B4'], malformed: 2, scanned: 5, ignoredQueueIds: 1 },
    });
    expect(r.data?.['postsuper']).toContain('Placed on hold: 3 messages');
    expect(actuator.heldQueueIds('alice@example.com')).toEqual(['4F2A31C0B1', '4F2A31C0B2', '3kx9Lz1qYwzABCd']);
  });

  it('releases exactly the recorded ids with postsuper -H -', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    await actuator.hold('alice@example.com', { senders: ['random@yahoo.com.tw'] });
    const r = await actuator.release('alice@example.com', { by: 'api:carol', reasons: ['false positive'] });
    const runs = log.runs();
    expect(runs.map((x) => [x.prog, x.argv])).toEqual([
      ['postqueue', ['-j']],
      ['postsuper', ['-h', '-']],
      ['postsuper', ['-H', '-']],
    ]);
    expect(runs[2]?.stdin).toBe('4F2A31C0B1\n4F2A31C0B2\n');
    expect(r).toMatchObject({ action: 'release', ok: true, changed: true, by: 'api:carol', command: [postsuper, '-H', '-'], data: { queueIds: ['4F2A31C0B1', '4F2A31C0B2'] } });
    expect(actuator.heldQueueIds('alice@example.com')).toEqual([]);
  });

  it('releases given ids (e.g. from the audit store after a restart), refusing bad ones', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    const r = await actuator.release('alice@example.com', { queueIds: ['ABCDE12345', '$(reboot)'] });
    expect(log.runs().map((x) => [x.argv, x.stdin])).toEqual([[['-H', '-'], 'ABCDE12345\n']]);
    expect(r.data).toMatchObject({ queueIds: ['ABCDE12345'], ignoredQueueIds: 1 });
  });

  it('release with nothing held is a clear no-op record', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    const r = await actuator.release('bob@example.com');
    expect(log.runs()).toEqual([]);
    expect(r).toMatchObject({ ok: true, changed: false });
    expect(r.detail).toMatch(/nothing/);
  });

  it('holds nothing (and runs no postsuper) when nothing matches', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    const r = await actuator.hold('nobody@example.com');
    expect(log.runs().map((x) => x.prog)).toEqual(['postqueue']);
    expect(r).toMatchObject({ ok: true, changed: false, data: { queueIds: [] } });
  });

  it('uses the queue prefix', async () => {
    const log = newLog();
    const sudo = bin('fake-sudo');
    const { actuator } = standinActuator(log, { dryRun: false, queue: { prefix: [sudo, '-u', 'postfix'] } });
    const r = await actuator.hold('alice@example.com');
    expect(log.runs().map((x) => [x.prog, x.argv])).toEqual([
      ['fake-sudo', ['-u', 'postfix', postqueue, '-j']],
      ['postqueue', ['-j']],
      ['fake-sudo', ['-u', 'postfix', postsuper, '-h', '-']],
      ['postsuper', ['-h', '-']],
    ]);
    expect(log.runs()[3]?.stdin).toBe('4F2A31C0B1\n');
    expect(r.command).toEqual([sudo, '-u', 'postfix', postsuper, '-h', '-']);
  });

  it('reads a queue listing from the file the stand-in is given', async () => {
    const log = newLog();
    const q = join(log.dir, 'queue.jsonl');
    writeFileSync(q, '{"queue_name":"active","queue_id":"ZZZZZ1","sender":"carol@example.com","recipients":[]}\n');
    const { actuator } = standinActuator(log, { dryRun: false }, { FG_STANDIN_QUEUE: q });
    const r = await actuator.hold('carol@example.com');
    expect(log.runs()[1]?.stdin).toBe('ZZZZZ1\n');
    expect(r.data).toMatchObject({ malformed: 0, scanned: 1 });
  });

  it('records a failing postqueue', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false, queue: { postqueuePath: bin('no-such-postqueue') } });
    const r = await actuator.hold('alice@example.com');
    expect(r).toMatchObject({ ok: false, error: { code: 'FG_ACTION_COMMAND_FAILED' } });
    expect(r.error?.message).toMatch(/not found/);
  });

  it('dry-run runs nothing and records both argv', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, {});
    const r = await actuator.hold('alice@example.com', { senders: ['random@yahoo.com.tw'], queueIds: ['ABCDE12345'] });
    const rel = await actuator.release('alice@example.com', { queueIds: ['ABCDE12345'] });
    expect(log.runs()).toEqual([]);
    expect(r).toMatchObject({ dryRun: true, ok: true, changed: false, reads: [[postqueue, '-j']], command: [postsuper, '-h', '-'], data: { queueIds: ['ABCDE12345'], senders: ['random@yahoo.com.tw'] } });
    expect(rel).toMatchObject({ dryRun: true, command: [postsuper, '-H', '-'], data: { queueIds: ['ABCDE12345'] } });
  });
});
