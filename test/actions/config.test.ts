// The actions config: safe defaults, every problem named by its key, frozen.
import { describe, expect, it } from 'vitest';
import { actionRecordSchema, parseActionsConfig, Actuator } from '../../src/actions/index.js';

describe('actions config', () => {
  it('defaults are the safe ones', () => {
    const c = parseActionsConfig({});
    expect(c).toEqual({
      dryRun: true,
      backend: 'zmprov',
      checkStatus: true,
      zmprov: { path: '/opt/zimbra/bin/zmprov', prefix: [], timeoutMs: 60000 },
      soap: { url: 'https://localhost:7071/service/admin/soap', adminPasswordEnv: 'FLOODGATE_ZIMBRA_ADMIN_PASSWORD', timeoutMs: 15000 },
      followUps: { forcePasswordChange: false, invalidateSessions: false },
      queue: { postqueuePath: '/opt/zimbra/common/sbin/postqueue', postsuperPath: '/opt/zimbra/common/sbin/postsuper', prefix: [], timeoutMs: 60000 },
      webhooks: { targets: [], timeoutMs: 10000, maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 60000 },
    });
    expect(Object.isFrozen(c.zmprov.prefix)).toBe(true);
    expect(parseActionsConfig(undefined).dryRun).toBe(true);
  });

  it('reports every problem at once, each by key', () => {
    let msg = '';
    try {
      parseActionsConfig({ dryRun: 'no', zmprov: { path: '-x', prefix: [''] }, webhooks: { maxAttempts: 0, targets: [{ name: 'a b', url: 'ftp://x', secret: 'short' }] }, bogus: 1 });
    } catch (e) {
      expect((e as { code: string }).code).toBe('FG_CONFIG_INVALID');
      msg = (e as Error).message;
    }
    for (const key of ['actions.dryRun', 'actions.zmprov.path', 'actions.zmprov.prefix.0', 'actions.webhooks.maxAttempts', 'actions.webhooks.targets.0.name', 'actions.webhooks.targets.0.url', 'actions.webhooks.targets.0.secret', 'actions.(root)']) {
      expect(msg).toContain(key);
    }
  });

  it('needs a set secretEnv, and distinct target names', () => {
    expect(() => new Actuator({ config: { webhooks: { targets: [{ name: 'soc', url: 'https://soc.example/hook', secretEnv: 'FG_UNSET_VAR' }] } }, audit: () => {}, env: {} })).toThrow(/FG_UNSET_VAR is not set/);
    expect(() => parseActionsConfig({ webhooks: { targets: [{ name: 'a', url: 'https://x.example/' }, { name: 'a', url: 'https://y.example/' }] } })).toThrow(/duplicate target name/);
  });

  it('every record the Actuator makes fits the record schema', async () => {
    const records: unknown[] = [];
    const a = new Actuator({ config: { followUps: { forcePasswordChange: true, invalidateSessions: true } }, audit: (r) => void records.push(r) });
    await a.lock('alice@example.com', ['r']);
    await a.lock('$(x)', ['r']);
    await a.unlock('alice@example.com', 'api:u');
    await a.hold('alice@example.com', { queueIds: ['ABCDE1'] });
    await a.release('alice@example.com');
    await a.notify({ event: 'x', ts: 0, summary: 's' });
    expect(records).toHaveLength(8);
    for (const r of records) expect(actionRecordSchema.safeParse(r).success).toBe(true);
  });
});
