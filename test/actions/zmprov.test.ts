// Lock/unlock and follow-ups through the real execRunner against the zmprov
// stand-in: the exact argv each action runs is asserted from the stand-in's log.
import { afterEach, describe, expect, it } from 'vitest';
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

const zmprov = bin('zmprov');

describe('lock (zmprov)', () => {
  it('runs exactly `zmprov ma ACCOUNT zimbraAccountStatus locked` when status checks are off', async () => {
    const log = newLog();
    const { actuator, records } = standinActuator(log, { dryRun: false, checkStatus: false });
    const { lock, followUps } = await actuator.lock('Alice@Example.COM', ['forged-sender: 412 senders in 5 min'], 'policy');
    expect(log.runs().map((r) => [r.prog, r.argv])).toEqual([['zmprov', ['ma', 'alice@example.com', 'zimbraAccountStatus', 'locked']]]);
    expect(lock).toMatchObject({
      action: 'lock',
      account: 'alice@example.com',
      ok: true,
      changed: true,
      dryRun: false,
      backend: 'zmprov',
      by: 'policy',
      reason: ['forged-sender: 412 senders in 5 min'],
      command: [zmprov, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'locked'],
    });
    expect(lock.reads).toBeUndefined();
    expect(followUps).toEqual([]);
    expect(records).toEqual([lock]);
  });

  it('reads the status first by default, and records the previous one', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    const { lock } = await actuator.lock('alice@example.com', ['r']);
    expect(log.runs().map((r) => r.argv)).toEqual([
      ['ga', 'alice@example.com', 'zimbraAccountStatus'],
      ['ma', 'alice@example.com', 'zimbraAccountStatus', 'locked'],
    ]);
    expect(lock.reads).toEqual([[zmprov, 'ga', 'alice@example.com', 'zimbraAccountStatus']]);
    expect(lock.command).toEqual([zmprov, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'locked']);
    expect(lock.data).toMatchObject({ previousStatus: 'active' });
  });

  it('puts the prefix argv in front, unchanged (sudo -u zimbra)', async () => {
    const log = newLog();
    const sudo = bin('fake-sudo');
    const { actuator } = standinActuator(log, { dryRun: false, checkStatus: false, zmprov: { prefix: [sudo, '-u', 'zimbra'] } });
    const { lock } = await actuator.lock('alice@example.com', ['r']);
    expect(log.runs().map((r) => [r.prog, r.argv])).toEqual([
      ['fake-sudo', ['-u', 'zimbra', zmprov, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'locked']],
      ['zmprov', ['ma', 'alice@example.com', 'zimbraAccountStatus', 'locked']],
    ]);
    expect(lock.command).toEqual([sudo, '-u', 'zimbra', zmprov, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'locked']);
    expect(lock.ok).toBe(true);
  });

  it('leaves an already locked or closed account alone, refuses one in maintenance', async () => {
    for (const [status, ok] of [['locked', true], ['closed', true], ['maintenance', false]] as const) {
      const log = newLog();
      const { actuator } = standinActuator(log, { dryRun: false }, { FG_STANDIN_STATUS: status });
      const { lock, followUps } = await actuator.lock('alice@example.com', ['r']);
      expect(log.runs().map((r) => r.argv[0])).toEqual(['ga']);
      expect(lock).toMatchObject({ ok, changed: false, data: { previousStatus: status } });
      expect(lock.command).toBeUndefined();
      if (!ok) {
        expect(lock.error?.code).toBe('FG_ACTION_REFUSED');
        expect(followUps).toEqual([]);
      }
    }
  });

  it('records a zmprov failure with its stderr, and runs no follow-ups', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false, checkStatus: false, followUps: { forcePasswordChange: true } });
    const { lock, followUps } = await actuator.lock('nosuch@example.com', ['r']);
    expect(lock.ok).toBe(false);
    expect(lock.error?.code).toBe('FG_ACTION_COMMAND_FAILED');
    expect(lock.error?.message).toContain('account.NO_SUCH_ACCOUNT');
    expect(lock.command).toEqual([zmprov, 'ma', 'nosuch@example.com', 'zimbraAccountStatus', 'locked']);
    expect(followUps).toEqual([]);
  });

  it('runs the follow-ups with their exact argv: password change, then session invalidation (N → N+1)', async () => {
    const log = newLog();
    const { actuator, records } = standinActuator(log, { dryRun: false, checkStatus: false, followUps: { forcePasswordChange: true, invalidateSessions: true } }, { FG_STANDIN_VALIDITY: '41' });
    const { lock, followUps } = await actuator.lock('alice@example.com', ['r'], 'api:carol');
    expect(log.runs().map((r) => r.argv)).toEqual([
      ['ma', 'alice@example.com', 'zimbraAccountStatus', 'locked'],
      ['ma', 'alice@example.com', 'zimbraPasswordMustChange', 'TRUE'],
      ['ga', 'alice@example.com', 'zimbraAuthTokenValidityValue'],
      ['ma', 'alice@example.com', 'zimbraAuthTokenValidityValue', '42'],
    ]);
    expect(followUps.map((r) => [r.action, r.ok, r.by, r.command])).toEqual([
      ['password-change', true, 'api:carol', [zmprov, 'ma', 'alice@example.com', 'zimbraPasswordMustChange', 'TRUE']],
      ['invalidate-sessions', true, 'api:carol', [zmprov, 'ma', 'alice@example.com', 'zimbraAuthTokenValidityValue', '42']],
    ]);
    expect(followUps[1]?.reads).toEqual([[zmprov, 'ga', 'alice@example.com', 'zimbraAuthTokenValidityValue']]);
    expect(followUps[1]?.data).toMatchObject({ previousValue: 41, newValue: 42 });
    expect(records).toEqual([lock, ...followUps]);
  });

  it('counts an unset zimbraAuthTokenValidityValue as 0', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false, checkStatus: false, followUps: { invalidateSessions: true } }, { FG_STANDIN_VALIDITY: 'unset' });
    const { followUps } = await actuator.lock('alice@example.com', ['r']);
    expect(log.runs().at(-1)?.argv).toEqual(['ma', 'alice@example.com', 'zimbraAuthTokenValidityValue', '1']);
    expect(followUps[0]?.ok).toBe(true);
  });

  it('does not pass floodgate secrets in the environment of the child', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false });
    await actuator.lock('alice@example.com', ['r']);
    for (const run of log.runs()) expect(run.leakedEnv).toEqual([]);
  });
});

describe('unlock (zmprov)', () => {
  it('runs exactly `zmprov ma ACCOUNT zimbraAccountStatus active` on a locked account', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false }, { FG_STANDIN_STATUS: 'locked' });
    const r = await actuator.unlock('alice@example.com', 'api:carol', ['owner called, password reset']);
    expect(log.runs().map((x) => x.argv)).toEqual([
      ['ga', 'alice@example.com', 'zimbraAccountStatus'],
      ['ma', 'alice@example.com', 'zimbraAccountStatus', 'active'],
    ]);
    expect(r).toMatchObject({ action: 'unlock', ok: true, changed: true, by: 'api:carol', reason: ['owner called, password reset'], command: [zmprov, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'active'] });
  });

  it('without status checks, runs the ma directly', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false, checkStatus: false });
    await actuator.unlock('alice@example.com', 'api:carol');
    expect(log.runs().map((x) => x.argv)).toEqual([['ma', 'alice@example.com', 'zimbraAccountStatus', 'active']]);
  });

  it('unlocking a never-locked account is a clear, ok, unchanged record', async () => {
    const log = newLog();
    const { actuator, records } = standinActuator(log, { dryRun: false });
    const r = await actuator.unlock('bob@example.com', 'api:carol');
    expect(log.runs().map((x) => x.argv[0])).toEqual(['ga']);
    expect(r).toMatchObject({ ok: true, changed: false, data: { previousStatus: 'active' } });
    expect(r.detail).toMatch(/not locked/);
    expect(r.command).toBeUndefined();
    expect(records).toEqual([r]);
  });

  it('never reopens a closed account', async () => {
    const log = newLog();
    const { actuator } = standinActuator(log, { dryRun: false }, { FG_STANDIN_STATUS: 'closed' });
    const r = await actuator.unlock('bob@example.com', 'api:carol');
    expect(log.runs().map((x) => x.argv[0])).toEqual(['ga']);
    expect(r).toMatchObject({ ok: false, changed: false, error: { code: 'FG_ACTION_REFUSED' } });
  });
});

describe('dry-run (the default)', () => {
  it('runs nothing and records the exact argv it would run', async () => {
    const log = newLog();
    const sudo = bin('fake-sudo');
    const { actuator, records } = standinActuator(log, { followUps: { forcePasswordChange: true, invalidateSessions: true }, zmprov: { prefix: [sudo, '-u', 'zimbra'] } });
    expect(actuator.dryRun).toBe(true);
    const { lock, followUps } = await actuator.lock('alice@example.com', ['r']);
    const unlock = await actuator.unlock('alice@example.com', 'api:carol');
    expect(log.runs()).toEqual([]);
    const p = [sudo, '-u', 'zimbra', zmprov];
    expect(lock).toMatchObject({ dryRun: true, ok: true, changed: false, command: [...p, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'locked'], reads: [[...p, 'ga', 'alice@example.com', 'zimbraAccountStatus']] });
    expect(followUps.map((r) => [r.action, r.dryRun, r.command])).toEqual([
      ['password-change', true, [...p, 'ma', 'alice@example.com', 'zimbraPasswordMustChange', 'TRUE']],
      ['invalidate-sessions', true, [...p, 'ma', 'alice@example.com', 'zimbraAuthTokenValidityValue', '<current+1>']],
    ]);
    expect(unlock).toMatchObject({ dryRun: true, command: [...p, 'ma', 'alice@example.com', 'zimbraAccountStatus', 'active'] });
    expect(records).toHaveLength(4);
    expect(records.every((r) => r.detail.startsWith('dry run: would'))).toBe(true);
  });
});

describe('hostile account names', () => {
  const hostile = ['$(reboot)@x.com', 'a@x.com; rm -rf /', '-a@x', 'a\n@x.com', '`id`@x.com', 'a|b@x.com', 'a&b@x.com', '"a"@x.com', "a'b@x.com", '../../etc/passwd', 'a b@x.com', '', '--help', 'a@x.com\0', 'a@@x.com', 'x'.repeat(300)];

  it.each(hostile)('%j is refused, recorded, and no process starts', async (name) => {
    const log = newLog();
    const { actuator, records } = standinActuator(log, { dryRun: false, checkStatus: false, followUps: { forcePasswordChange: true, invalidateSessions: true } });
    const { lock, followUps } = await actuator.lock(name, ['r']);
    const unlock = await actuator.unlock(name, 'api:mallory');
    const hold = await actuator.hold(name, { senders: ['x@y.z'] });
    const release = await actuator.release(name, { queueIds: ['ABCDE12345'] });
    expect(log.runs()).toEqual([]);
    for (const r of [lock, unlock, hold, release]) {
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('FG_ACTION_INVALID_ACCOUNT');
      expect(r.command).toBeUndefined();
      expect(r.account).not.toMatch(/[\n\0]/);
    }
    expect(followUps).toEqual([]);
    expect(records).toHaveLength(4);
  });
});
