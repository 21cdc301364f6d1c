/**
 * Actuator: the one door through which floodgate changes anything outside
 * itself — lock/unlock a Zimbra account (zmprov or admin SOAP), hold/release
 * its queued mail, notify webhooks. Every call returns ActionRecords and hands
 * each to the audit sink, whatever happened: done, dry-run, no-op, refused,
 * failed. Outcomes are data; methods throw only if the audit sink does.
 *
 * Order of a call: validate the account (a hostile name is recorded as
 * refused and nothing starts) → in dry-run, record the argv that would run →
 * otherwise run and record. Deciding *whether* to act (score, allowlists,
 * budget, cooldown, idempotence across calls) is the policy's job.
 *
 * I/O comes in through the options (runner, fetch, clock, outbox, env), so
 * tests stand recording stand-ins in at the process and HTTP boundaries.
 */
import { randomUUID } from 'node:crypto';
import { FloodgateError } from '../core/errors.js';
import { checkAccount, quoteForLog } from './account.js';
import { parseActionsConfig, type ActionsConfig, type ActionsConfigInput } from './config.js';
import { partitionQueueIds, PostfixQueue, selectMessages } from './hold-queue.js';
import { execRunner, type CommandRunner } from './runner.js';
import type { ActionBackend, ActionKind, ActionLog, ActionRecord, AuditSink, StepOutcome } from './types.js';
import { MemoryOutbox, WebhookNotifier, type Notification, type OutboxEntry, type WebhookOutbox, type WebhookTarget } from './webhook.js';
import { SoapProvisioning, toActionError, ZimbraLocker, ZmprovProvisioning, type Provisioning } from './zimbra-lock.js';

export * from './account.js';
export * from './config.js';
export * from './hold-queue.js';
export * from './held.js';
export * from './queued-mail.js';
export * from './runner.js';
export * from './types.js';
export * from './webhook.js';
export * from './zimbra-lock.js';
export * from './xml.js';
export * from './http.js';

export interface ActuatorOptions {
  /** The `actions` config section; validated (defaults applied) and frozen here. */
  config?: ActionsConfigInput;
  /** Receives every record. */
  audit: AuditSink;
  /** Default: execRunner() with the zmprov/queue timeouts from config. */
  runner?: CommandRunner;
  fetch?: typeof fetch;
  now?: () => number;
  /** Where secrets named by `*Env` keys are read. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Webhook outbox. Default: in memory. */
  outbox?: WebhookOutbox;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  newId?: () => string;
  log?: ActionLog;
}

export interface LockResult {
  lock: ActionRecord;
  /** password-change / invalidate-sessions records, when enabled and the lock succeeded. */
  followUps: ActionRecord[];
}

export interface HoldOptions {
  /** Envelope senders the policy saw the account use (forged ones included). */
  senders?: readonly string[];
  /** Queue ids the policy saw; invalid ones are counted and ignored. */
  queueIds?: readonly string[];
  /** Why the senders and queue ids could not be looked up (the hold then goes by the account's address). */
  hintsError?: string;
  by?: string;
  reasons?: readonly string[];
}

export interface ReleaseOptions {
  /** Ids to release; default: those this Actuator held for the account. */
  queueIds?: readonly string[];
  by?: string;
  reasons?: readonly string[];
}

function resolveSecret(value: string | undefined, envName: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (value !== undefined) return value;
  if (envName === undefined) return undefined;
  const v = env[envName];
  return v === undefined || v === '' ? undefined : v;
}

export class Actuator {
  readonly config: Readonly<ActionsConfig>;
  readonly webhooks: WebhookNotifier;
  private readonly locker: ZimbraLocker;
  private readonly queue: PostfixQueue;
  private readonly audit: AuditSink;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly log: ActionLog;
  /** Queue ids held per account by this process, for release(). The audit records carry them durably. */
  private readonly held = new Map<string, Set<string>>();

  constructor(o: ActuatorOptions) {
    const c = parseActionsConfig(o.config ?? {});
    this.config = c;
    this.audit = o.audit;
    this.now = o.now ?? Date.now;
    this.newId = o.newId ?? randomUUID;
    this.log = o.log ?? (() => {});
    const env = o.env ?? process.env;
    const runner = o.runner ?? execRunner();
    const fetchFn = o.fetch ?? globalThis.fetch;

    let prov: Provisioning;
    if (c.backend === 'soap') {
      const password = resolveSecret(c.soap.adminPassword, c.soap.adminPasswordEnv, env);
      if (password === undefined && !c.dryRun) {
        throw new FloodgateError('FG_CONFIG_INVALID', `invalid actions config:\n  actions.soap: no admin password: set the environment variable ${c.soap.adminPasswordEnv} (or actions.soap.adminPassword)`);
      }
      prov = new SoapProvisioning({ url: c.soap.url, adminUser: c.soap.adminUser ?? '', adminPassword: password ?? '', timeoutMs: c.soap.timeoutMs, fetch: fetchFn, now: this.now });
    } else {
      prov = new ZmprovProvisioning({ path: c.zmprov.path, prefix: c.zmprov.prefix, timeoutMs: c.zmprov.timeoutMs }, runner);
    }
    this.locker = new ZimbraLocker(prov, { checkStatus: c.checkStatus });
    this.queue = new PostfixQueue(c.queue, runner);

    const targets: WebhookTarget[] = c.webhooks.targets.map((t, i) => {
      const secret = resolveSecret(t.secret, t.secretEnv, env);
      if (t.secretEnv !== undefined && secret === undefined) {
        throw new FloodgateError('FG_CONFIG_INVALID', `invalid actions config:\n  actions.webhooks.targets.${i}.secretEnv: the environment variable ${t.secretEnv} is not set`);
      }
      return { name: t.name, url: t.url, format: t.format, ...(secret !== undefined ? { secret } : {}) };
    });
    this.webhooks = new WebhookNotifier({
      targets,
      outbox: o.outbox ?? new MemoryOutbox(),
      fetch: fetchFn,
      timeoutMs: c.webhooks.timeoutMs,
      maxAttempts: c.webhooks.maxAttempts,
      baseDelayMs: c.webhooks.baseDelayMs,
      maxDelayMs: c.webhooks.maxDelayMs,
      ...(o.sleep ? { sleep: o.sleep } : {}),
      ...(o.random ? { random: o.random } : {}),
      now: this.now,
      newId: this.newId,
      log: this.log,
    });
  }

  get dryRun(): boolean {
    return this.config.dryRun;
  }

  private get zimbraBackend(): ActionBackend {
    return this.config.backend;
  }

  private async emit(action: ActionKind, account: string, backend: ActionBackend, dryRun: boolean, by: string, reason: readonly string[], o: StepOutcome): Promise<ActionRecord> {
    const r: ActionRecord = {
      id: this.newId(),
      ts: this.now(),
      action,
      account,
      ok: o.ok,
      dryRun,
      changed: o.changed,
      backend,
      detail: o.detail,
      ...(o.command ? { command: [...o.command] } : {}),
      ...(o.reads ? { reads: o.reads.map((a) => [...a]) } : {}),
      ...(o.error ? { error: o.error } : {}),
      by,
      reason: [...reason],
      ...(o.data ? { data: o.data } : {}),
    };
    this.log(o.ok ? 'info' : 'warn', `action ${action} ${o.ok ? 'ok' : 'failed'}`, { action, ok: o.ok, dryRun, changed: o.changed, backend, ...(o.error ? { code: o.error.code } : {}) });
    this.log('debug', `action ${action}: ${o.detail}`, { account });
    await this.audit(r);
    return r;
  }

  /** Validates; on refusal emits the refusal record and returns it instead of the account. */
  private async accountOr(action: ActionKind, raw: string, backend: ActionBackend, by: string, reason: readonly string[]): Promise<{ account: string } | { refused: ActionRecord }> {
    const c = checkAccount(raw);
    if (c.ok) return { account: c.account };
    const error = toActionError(c.error);
    const refused = await this.emit(action, typeof raw === 'string' ? quoteForLog(raw) : '', backend, this.dryRun, by, reason, { ok: false, changed: false, detail: `${action} refused before anything ran: ${error.message}`, error });
    return { refused };
  }

  /** Locks the account, then runs the enabled follow-ups if the lock succeeded. */
  async lock(account: string, reasons: readonly string[], by = 'policy'): Promise<LockResult> {
    const backend = this.zimbraBackend;
    const v = await this.accountOr('lock', account, backend, by, reasons);
    if ('refused' in v) return { lock: v.refused, followUps: [] };
    const dry = this.dryRun;
    const lock = await this.emit('lock', v.account, backend, dry, by, reasons, await this.locker.lock(v.account, dry));
    const followUps: ActionRecord[] = [];
    if (lock.ok) {
      if (this.config.followUps.forcePasswordChange) {
        followUps.push(await this.emit('password-change', v.account, backend, dry, by, reasons, await this.locker.forcePasswordChange(v.account, dry)));
      }
      if (this.config.followUps.invalidateSessions) {
        followUps.push(await this.emit('invalidate-sessions', v.account, backend, dry, by, reasons, await this.locker.invalidateSessions(v.account, dry)));
      }
    }
    return { lock, followUps };
  }

  /** Reactivates a locked account. Unlocking one that is not locked is an ok, unchanged record saying so. */
  async unlock(account: string, by: string, reasons: readonly string[] = []): Promise<ActionRecord> {
    const backend = this.zimbraBackend;
    const v = await this.accountOr('unlock', account, backend, by, reasons);
    if ('refused' in v) return v.refused;
    return this.emit('unlock', v.account, backend, this.dryRun, by, reasons, await this.locker.unlock(v.account, this.dryRun));
  }

  /** Puts the account's queued mail (by sender, forged senders, or queue id) on hold. */
  async hold(account: string, opts: HoldOptions = {}): Promise<ActionRecord> {
    const by = opts.by ?? 'policy';
    const reasons = opts.reasons ?? [];
    const v = await this.accountOr('hold', account, 'postfix', by, reasons);
    if ('refused' in v) return v.refused;
    const acct = v.account;
    const { valid: givenIds, invalid } = partitionQueueIds(opts.queueIds);
    const senders = [...new Set((opts.senders ?? []).filter((s): s is string => typeof s === 'string').map((s) => s.toLowerCase()))].slice(0, 1000);
    const reads = [this.queue.listArgv()];
    const command = this.queue.holdArgv();
    const base = { senders, ...(invalid ? { ignoredQueueIds: invalid } : {}), ...(opts.hintsError !== undefined ? { hintsError: opts.hintsError.slice(0, 300) } : {}) };
    let o: StepOutcome;
    if (this.dryRun) {
      o = {
        ok: true,
        changed: false,
        detail: `dry run: would list the queue and hold mail sent as ${acct}${senders.length ? ` or ${senders.length} other sender(s)` : ''}${givenIds.length ? ` or with ${givenIds.length} given queue id(s)` : ''}`,
        command,
        reads,
        data: { ...base, queueIds: givenIds },
      };
    } else {
      try {
        const listing = await this.queue.list();
        const sel = selectMessages(listing.messages, { account: acct, senders, queueIds: givenIds });
        const data = { ...base, scanned: listing.messages.length, malformed: listing.malformed, alreadyHeld: sel.alreadyHeld };
        if (sel.hold.length === 0) {
          o = { ok: true, changed: false, detail: `no queued mail of ${acct} to hold${sel.alreadyHeld.length ? ` (${sel.alreadyHeld.length} already on hold)` : ''}`, reads, data: { ...data, queueIds: [] } };
        } else {
          const summary = await this.queue.hold(sel.hold);
          const set = this.held.get(acct) ?? new Set<string>();
          for (const id of sel.hold) set.add(id);
          this.held.set(acct, set);
          o = { ok: true, changed: true, detail: `held ${sel.hold.length} queued message(s) of ${acct}`, command, reads, data: { ...data, queueIds: sel.hold, postsuper: summary } };
        }
      } catch (e) {
        const error = toActionError(e);
        o = { ok: false, changed: false, detail: `hold mail of ${acct}: failed: ${error.message}`, error, reads, data: base };
      }
    }
    return this.emit('hold', acct, 'postfix', this.dryRun, by, reasons, o);
  }

  /** Releases what hold() held for the account (or the given ids). */
  async release(account: string, opts: ReleaseOptions = {}): Promise<ActionRecord> {
    const by = opts.by ?? 'policy';
    const reasons = opts.reasons ?? [];
    const v = await this.accountOr('release', account, 'postfix', by, reasons);
    if ('refused' in v) return v.refused;
    const acct = v.account;
    const given = opts.queueIds ? partitionQueueIds(opts.queueIds) : undefined;
    const ids = given ? given.valid : [...(this.held.get(acct) ?? [])];
    const base = given?.invalid ? { ignoredQueueIds: given.invalid } : {};
    const command = this.queue.releaseArgv();
    let o: StepOutcome;
    if (ids.length === 0) {
      o = { ok: true, changed: false, detail: `nothing recorded as held for ${acct}; nothing released`, data: { ...base, queueIds: [] } };
    } else if (this.dryRun) {
      o = { ok: true, changed: false, detail: `dry run: would release ${ids.length} message(s) of ${acct}`, command, data: { ...base, queueIds: ids } };
    } else {
      try {
        const summary = await this.queue.release(ids);
        const set = this.held.get(acct);
        if (set) {
          for (const id of ids) set.delete(id);
          if (set.size === 0) this.held.delete(acct);
        }
        o = { ok: true, changed: true, detail: `released ${ids.length} message(s) of ${acct}`, command, data: { ...base, queueIds: ids, postsuper: summary } };
      } catch (e) {
        const error = toActionError(e);
        o = { ok: false, changed: false, detail: `release mail of ${acct}: failed: ${error.message}`, error, command, data: { ...base, queueIds: ids } };
      }
    }
    return this.emit('release', acct, 'postfix', this.dryRun, by, reasons, o);
  }

  /** Queue ids this process holds for the account. */
  heldQueueIds(account: string): string[] {
    const c = checkAccount(account);
    return c.ok ? [...(this.held.get(c.account) ?? [])] : [];
  }

  /**
   * Sends the notification to every webhook target and waits for the outcome
   * (retries included). Sent in dry-run too: notifications are how a dry run
   * is watched; the payload's own `dryRun` says what it was.
   */
  async notify(n: Notification, by = 'policy'): Promise<ActionRecord> {
    const c = n.account === undefined ? undefined : checkAccount(n.account);
    const account = c === undefined ? '' : c.ok ? c.account : quoteForLog(String(n.account));
    const reasons = n.reasons ?? [];
    if (this.webhooks.targetNames.length === 0) {
      return this.emit('webhook', account, 'webhook', false, by, reasons, { ok: true, changed: false, detail: 'no webhook targets configured; nothing sent' });
    }
    let entries: OutboxEntry[];
    try {
      entries = await this.webhooks.send(n);
    } catch (e) {
      const error = toActionError(e);
      return this.emit('webhook', account, 'webhook', false, by, reasons, { ok: false, changed: false, detail: `webhook: outbox failed: ${error.message}`, error });
    }
    const failed = entries.filter((e) => e.state !== 'delivered');
    const deliveries = entries.map((e) => ({
      target: e.target,
      id: e.id,
      state: e.state,
      attempts: e.attempts,
      retryable: e.retryable,
      ...(e.lastStatus !== undefined ? { lastStatus: e.lastStatus } : {}),
      ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
    }));
    const o: StepOutcome = failed.length
      ? {
          ok: false,
          changed: entries.length > failed.length,
          detail: `webhook ${n.event}: delivered to ${entries.length - failed.length} of ${entries.length} target(s)`,
          error: { code: 'FG_WEBHOOK_FAILED', message: `not delivered to ${failed.map((e) => `${e.target} (${e.lastError ?? e.state}${e.retryable ? ', will retry' : ', not retried'})`).join(', ')}` },
          data: { deliveries },
        }
      : { ok: true, changed: true, detail: `webhook ${n.event}: delivered to ${entries.length} target(s)`, data: { deliveries } };
    return this.emit('webhook', account, 'webhook', false, by, reasons, o);
  }

  /** Retries undelivered webhook entries (call at startup and periodically). */
  retryPendingWebhooks(limit?: number): Promise<OutboxEntry[]> {
    return this.webhooks.retryPending(limit);
  }
}
