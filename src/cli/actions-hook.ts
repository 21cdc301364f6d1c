/**
 * Executes the policy's decisions through the Actuator: lock (+ hold the
 * account's queued mail) and notify webhooks. `policy.dryRun` is the one
 * switch: the actuator records the exact commands it would run without
 * running them unless the config (or `replay --act`) says otherwise.
 */
import { Actuator, queuedMailHints, type ActionRecord, type CommandRunner, type QueuedMailLookup, type WebhookOutbox } from '../actions/index.js';
import type { FloodgateConfig } from '../config/config.js';
import type { Decision } from '../policy/policy.js';

export interface ActionHook {
  execute(d: Decision): Promise<ActionRecord[]>;
  readonly actuator: Actuator;
}

export interface ActionHookDeps {
  runner?: CommandRunner;
  fetch?: typeof fetch;
  /** Senders the account used recently (forged ones included) and queue ids the logs tie to it, for hold. */
  queuedMailOf?: QueuedMailLookup;
  /** Durable webhook outbox (the store, for `floodgate run`). Default: in memory. */
  outbox?: WebhookOutbox;
}

export function createActionRunner(cfg: FloodgateConfig, onRecord: (rec: ActionRecord) => void, deps: ActionHookDeps = {}): ActionHook {
  const actuator = new Actuator({
    config: { ...cfg.actions, dryRun: cfg.policy.dryRun },
    audit: onRecord,
    runner: deps.runner,
    fetch: deps.fetch,
    outbox: deps.outbox,
  });
  const hasWebhooks = actuator.config.webhooks.targets.length > 0;
  return {
    actuator,
    async execute(d: Decision): Promise<ActionRecord[]> {
      const out: ActionRecord[] = [];
      if (d.action === 'lock' && d.account !== undefined) {
        // Asked before the lock's await: what the logs show queued when the decision is executed.
        const hints = d.hold ? queuedMailHints(deps.queuedMailOf, d.account, d.ts) : undefined;
        const r = await actuator.lock(d.account, d.reasons, 'policy');
        out.push(r.lock, ...r.followUps);
        if (d.hold && r.lock.ok) out.push(await actuator.hold(d.account, { ...(await hints), by: 'policy', reasons: d.reasons }));
      }
      if (hasWebhooks && d.action !== 'none') {
        out.push(
          await actuator.notify({
            event: d.action,
            ts: d.ts,
            summary: `${d.action === 'lock' ? 'Locked' : 'Alert on'} ${d.entity.kind} ${d.entity.id} (risk ${d.score}): ${d.reasons[0] ?? ''}`,
            ...(d.account !== undefined ? { account: d.account } : {}),
            severity: d.action === 'lock' ? 'critical' : 'high',
            dryRun: d.dryRun,
            reasons: d.reasons,
            ...(out[0] ? { action: out[0] } : {}),
            decision: d,
          }),
        );
      }
      return out;
    },
  };
}
