/**
 * Locking and unlocking Zimbra accounts, and the optional follow-ups after a
 * lock. Two backends reach the same provisioning attributes:
 *
 * zmprov (default) — one process per step, argument vector, never a shell:
 *   lock      [...prefix, zmprov, 'ma', ACCOUNT, 'zimbraAccountStatus', 'locked']
 *   unlock    [...prefix, zmprov, 'ma', ACCOUNT, 'zimbraAccountStatus', 'active']
 *   password  [...prefix, zmprov, 'ma', ACCOUNT, 'zimbraPasswordMustChange', 'TRUE']
 *   sessions  [...prefix, zmprov, 'ga', ACCOUNT, 'zimbraAuthTokenValidityValue']  → N
 *             [...prefix, zmprov, 'ma', ACCOUNT, 'zimbraAuthTokenValidityValue', String(N + 1)]
 *   with checkStatus (default), lock and unlock first read
 *             [...prefix, zmprov, 'ga', ACCOUNT, 'zimbraAccountStatus']
 *
 * soap — the admin SOAP API (https://HOST:7071/service/admin/soap):
 *   AuthRequest(name, password) → authToken (cached for its lifetime),
 *   GetAccountRequest(account by name) → id and attributes,
 *   ModifyAccountRequest(id, <a n="ATTR">VALUE</a>).
 *
 * Why the status is read first: `locked` is not the only non-active status.
 * Lock leaves `locked`, `closed` and `pending` accounts as they are (none can
 * log in) and refuses `maintenance` (a mailbox move in progress would put its
 * own status back); unlock reactivates only a `locked` account, so it can
 * never reopen one an administrator closed, and unlocking an active account is
 * a recorded no-op.
 *
 * Invalidating sessions: Zimbra stamps every auth token with the account's
 * zimbraAuthTokenValidityValue and rejects tokens whose stamp differs, so
 * raising it by one logs out every web, ActiveSync and SOAP session at once
 * (zimbraAuthTokenValidityValueEnabled must be TRUE, its default). An unset
 * value counts as 0. Unlocking does not undo either follow-up: after a
 * compromise the owner must still choose a new password.
 */
import { FloodgateError } from '../core/errors.js';
import { readBounded } from './http.js';
import type { CommandRunner } from './runner.js';
import type { ActionError, StepOutcome } from './types.js';
import { findFirst, parseXml, xmlEscape, type XmlElement } from './xml.js';

/** What a provisioning step is, for dry-run and audit: the argv (zmprov) or a request summary (SOAP). */
export interface StepPlan {
  argv?: string[];
  request?: string;
}

/** The two operations both backends provide; everything else is built on them. */
export interface Provisioning {
  readonly backend: 'zmprov' | 'soap';
  describeGet(account: string, attrs: readonly string[]): StepPlan;
  describeSet(account: string, attrs: ReadonlyArray<readonly [string, string]>): StepPlan;
  /** Attribute values (first value of multi-valued ones); absent attributes are missing from the result. */
  get(account: string, attrs: readonly string[]): Promise<Record<string, string>>;
  set(account: string, attrs: ReadonlyArray<readonly [string, string]>): Promise<void>;
}

export function toActionError(e: unknown): ActionError {
  if (e instanceof FloodgateError) return { code: e.code, message: e.message };
  return { code: 'FG_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/** The last few hundred characters of a command's stderr, one line: enough to see `ERROR: account.NO_SUCH_ACCOUNT`. */
export function stderrTail(s: string, max = 400): string {
  const t = s.trim().replace(/\s*\n\s*/g, ' | ');
  return t.length > max ? `…${t.slice(-max)}` : t;
}

// ---------------------------------------------------------------- zmprov

export interface ZmprovOptions {
  path: string;
  prefix: readonly string[];
  timeoutMs: number;
}

/** Parses `zmprov ga` output (`# name ACCOUNT` then `attr: value` lines). */
export function parseZmprovAttrs(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    if (line.startsWith('#')) continue;
    const c = line.indexOf(': ');
    if (c <= 0) continue;
    const k = line.slice(0, c);
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(k) || Object.hasOwn(out, k)) continue;
    out[k] = line.slice(c + 2).replace(/\r$/, '');
  }
  return out;
}

export class ZmprovProvisioning implements Provisioning {
  readonly backend = 'zmprov' as const;
  constructor(
    private readonly opts: ZmprovOptions,
    private readonly runner: CommandRunner,
  ) {}

  describeGet(account: string, attrs: readonly string[]): StepPlan {
    return { argv: [...this.opts.prefix, this.opts.path, 'ga', account, ...attrs] };
  }

  describeSet(account: string, attrs: ReadonlyArray<readonly [string, string]>): StepPlan {
    return { argv: [...this.opts.prefix, this.opts.path, 'ma', account, ...attrs.flat()] };
  }

  private async run(argv: string[], what: string): Promise<string> {
    const r = await this.runner.run(argv, { timeoutMs: this.opts.timeoutMs });
    if (r.code !== 0) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `zmprov ${what} exited ${r.code}: ${stderrTail(r.stderr) || '(no stderr)'}`);
    return r.stdout;
  }

  async get(account: string, attrs: readonly string[]): Promise<Record<string, string>> {
    return parseZmprovAttrs(await this.run(this.describeGet(account, attrs).argv ?? [], 'ga'));
  }

  async set(account: string, attrs: ReadonlyArray<readonly [string, string]>): Promise<void> {
    await this.run(this.describeSet(account, attrs).argv ?? [], 'ma');
  }
}

// ---------------------------------------------------------------- SOAP

export interface SoapOptions {
  url: string;
  adminUser: string;
  /** Resolved secret; kept in this object only, never logged, never in a record. */
  adminPassword: string;
  timeoutMs: number;
  fetch: typeof fetch;
  now: () => number;
}

const soapNs = 'http://www.w3.org/2003/05/soap-envelope';
const maxSoapResponse = 4 * 1024 * 1024;

export class SoapFaultError extends FloodgateError {
  constructor(
    readonly faultCode: string,
    message: string,
  ) {
    super('FG_ACTION_SOAP_FAILED', message);
  }
}

/** Builds one SOAP 1.2 envelope. `body` must already be escaped XML. */
export function soapEnvelope(body: string, authToken?: string): string {
  const ctx = authToken === undefined ? '<context xmlns="urn:zimbra"><nosession/></context>' : `<context xmlns="urn:zimbra"><authToken>${xmlEscape(authToken)}</authToken><nosession/></context>`;
  return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="${soapNs}"><soap:Header>${ctx}</soap:Header><soap:Body>${body}</soap:Body></soap:Envelope>`;
}

function attrsOf(account: XmlElement): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of account.children) {
    const n = c.attrs['n'];
    if (c.name === 'a' && n !== undefined && !Object.hasOwn(out, n)) out[n] = c.text;
  }
  return out;
}

export class SoapProvisioning implements Provisioning {
  readonly backend = 'soap' as const;
  private token: { value: string; expires: number } | undefined;
  private readonly ids = new Map<string, string>();

  constructor(private readonly opts: SoapOptions) {}

  describeGet(account: string, attrs: readonly string[]): StepPlan {
    return { request: `GetAccountRequest account(by=name)=${account} attrs=${attrs.join(',')}` };
  }

  describeSet(account: string, attrs: ReadonlyArray<readonly [string, string]>): StepPlan {
    return { request: `ModifyAccountRequest ${account} ${attrs.map(([k, v]) => `${k}=${v}`).join(' ')}` };
  }

  private async post(xml: string, what: string): Promise<XmlElement> {
    const origin = new URL(this.opts.url).origin;
    let res: Response;
    try {
      res = await this.opts.fetch(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/soap+xml; charset=utf-8' },
        body: xml,
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
      const why = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError') ? `timed out after ${this.opts.timeoutMs} ms` : `${e instanceof Error ? e.message : String(e)}${cause}`;
      throw new FloodgateError('FG_ACTION_SOAP_FAILED', `${what}: cannot reach ${origin}: ${why}`, { cause: e });
    }
    let text: string;
    let root: XmlElement;
    try {
      text = await readBounded(res, maxSoapResponse);
      root = parseXml(text);
    } catch (e) {
      throw new FloodgateError('FG_ACTION_SOAP_FAILED', `${what}: HTTP ${res.status}, unreadable response: ${e instanceof Error ? e.message : String(e)}`);
    }
    const body = findFirst(root, 'Body');
    const first = body?.children[0];
    if (!first) throw new FloodgateError('FG_ACTION_SOAP_FAILED', `${what}: HTTP ${res.status}, response has no SOAP body`);
    if (first.name === 'Fault') {
      const code = findFirst(first, 'Error')?.children.find((c) => c.name === 'Code')?.text ?? findFirst(first, 'Value')?.text ?? 'unknown';
      const reason = findFirst(first, 'Text')?.text ?? findFirst(first, 'faultstring')?.text ?? '';
      throw new SoapFaultError(code, `${what} failed: ${code}${reason ? `: ${reason}` : ''}`);
    }
    if (!res.ok) throw new FloodgateError('FG_ACTION_SOAP_FAILED', `${what}: HTTP ${res.status}`);
    return first;
  }

  private async authToken(): Promise<string> {
    if (this.token && this.token.expires > this.opts.now()) return this.token.value;
    const body = `<AuthRequest xmlns="urn:zimbraAdmin"><name>${xmlEscape(this.opts.adminUser)}</name><password>${xmlEscape(this.opts.adminPassword)}</password></AuthRequest>`;
    const r = await this.post(soapEnvelope(body), 'AuthRequest');
    const value = r.children.find((c) => c.name === 'authToken')?.text;
    if (!value) throw new FloodgateError('FG_ACTION_SOAP_FAILED', 'AuthRequest: no authToken in the response');
    const lifetime = Number(r.children.find((c) => c.name === 'lifetime')?.text ?? '');
    // Renew a minute early; without a stated lifetime assume Zimbra's admin default (12 h).
    const ms = Number.isFinite(lifetime) && lifetime > 0 ? lifetime : 12 * 3600_000;
    this.token = { value, expires: this.opts.now() + Math.max(0, ms - 60_000) };
    return value;
  }

  /** One authenticated request; a token the server calls expired is renewed once. */
  private async call(body: string, what: string): Promise<XmlElement> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.authToken();
      try {
        return await this.post(soapEnvelope(body, token), what);
      } catch (e) {
        if (attempt === 0 && e instanceof SoapFaultError && (e.faultCode === 'service.AUTH_EXPIRED' || e.faultCode === 'service.AUTH_REQUIRED')) {
          this.token = undefined;
          continue;
        }
        throw e;
      }
    }
  }

  private async getAccount(account: string, attrs: readonly string[]): Promise<{ id: string; attrs: Record<string, string> }> {
    const body = `<GetAccountRequest xmlns="urn:zimbraAdmin" applyCos="0" attrs="${xmlEscape(attrs.join(','))}"><account by="name">${xmlEscape(account)}</account></GetAccountRequest>`;
    const r = await this.call(body, 'GetAccountRequest');
    const acct = r.children.find((c) => c.name === 'account');
    const id = acct?.attrs['id'];
    if (!acct || !id) throw new FloodgateError('FG_ACTION_SOAP_FAILED', 'GetAccountRequest: no account id in the response');
    if (this.ids.size >= 1000) this.ids.clear();
    this.ids.set(account, id);
    return { id, attrs: attrsOf(acct) };
  }

  async get(account: string, attrs: readonly string[]): Promise<Record<string, string>> {
    return (await this.getAccount(account, attrs)).attrs;
  }

  async set(account: string, attrs: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const id = this.ids.get(account) ?? (await this.getAccount(account, ['zimbraAccountStatus'])).id;
    const as = attrs.map(([k, v]) => `<a n="${xmlEscape(k)}">${xmlEscape(v)}</a>`).join('');
    await this.call(`<ModifyAccountRequest xmlns="urn:zimbraAdmin" id="${xmlEscape(id)}">${as}</ModifyAccountRequest>`, 'ModifyAccountRequest');
  }
}

// ---------------------------------------------------------------- lock logic

const STATUS = 'zimbraAccountStatus';
const VALIDITY = 'zimbraAuthTokenValidityValue';

export interface LockerOptions {
  /** Read zimbraAccountStatus before lock/unlock (see the file comment). */
  checkStatus: boolean;
}

function plan(p: StepPlan, soapRequests: string[]): string[] | undefined {
  if (p.request !== undefined) soapRequests.push(p.request);
  return p.argv;
}

/** Lock, unlock and the follow-ups, as outcomes (never throws for a failed step). Accounts must already be validated. */
export class ZimbraLocker {
  constructor(
    readonly prov: Provisioning,
    private readonly opts: LockerOptions,
  ) {}

  private async change(
    account: string,
    dryRun: boolean,
    readAttrs: readonly string[] | undefined,
    decide: (attrs: Record<string, string>) => { set: Array<readonly [string, string]>; data?: Record<string, unknown> } | { skip: StepOutcome },
    dryAttrs: Array<readonly [string, string]>,
    verb: string,
  ): Promise<StepOutcome> {
    const requests: string[] = [];
    const readPlan = readAttrs ? plan(this.prov.describeGet(account, readAttrs), requests) : undefined;
    const reads = readPlan ? [readPlan] : undefined;
    if (dryRun) {
      const command = plan(this.prov.describeSet(account, dryAttrs), requests);
      return {
        ok: true,
        changed: false,
        detail: `dry run: would ${verb}${readAttrs ? ` (after reading ${readAttrs.join(', ')})` : ''}`,
        ...(command ? { command } : {}),
        ...(reads ? { reads } : {}),
        ...(requests.length ? { data: { requests } } : {}),
      };
    }
    let command: string[] | undefined;
    let data: Record<string, unknown> = {};
    try {
      const current = readAttrs ? await this.prov.get(account, readAttrs) : {};
      const d = decide(current);
      if ('skip' in d) return { ...d.skip, ...(reads ? { reads } : {}), ...(requests.length ? { data: { ...d.skip.data, requests } } : {}) };
      data = d.data ?? {};
      command = plan(this.prov.describeSet(account, d.set), requests);
      await this.prov.set(account, d.set);
      return {
        ok: true,
        changed: true,
        detail: `${verb}: done`,
        ...(command ? { command } : {}),
        ...(reads ? { reads } : {}),
        data: { ...data, ...(requests.length ? { requests } : {}) },
      };
    } catch (e) {
      const error = toActionError(e);
      return {
        ok: false,
        changed: false,
        detail: `${verb}: failed: ${error.message}`,
        error,
        ...(command ? { command } : {}),
        ...(reads ? { reads } : {}),
        ...(Object.keys(data).length || requests.length ? { data: { ...data, ...(requests.length ? { requests } : {}) } } : {}),
      };
    }
  }

  lock(account: string, dryRun: boolean): Promise<StepOutcome> {
    const set: Array<readonly [string, string]> = [[STATUS, 'locked']];
    return this.change(
      account,
      dryRun,
      this.opts.checkStatus ? [STATUS] : undefined,
      (cur) => {
        if (!this.opts.checkStatus) return { set };
        const status = cur[STATUS];
        if (status === undefined) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `could not read ${STATUS} of ${account}`);
        const data = { previousStatus: status };
        if (status === 'active' || status === 'lockout') return { set, data };
        if (status === 'locked' || status === 'closed' || status === 'pending') {
          return { skip: { ok: true, changed: false, detail: `lock ${account}: status is already ${status}; nothing changed`, data } };
        }
        return {
          skip: { ok: false, changed: false, detail: `lock ${account}: refused, status is ${status}`, data, error: { code: 'FG_ACTION_REFUSED', message: `${account} has status ${status}; floodgate locks only active or lockout accounts` } },
        };
      },
      set,
      `lock ${account}`,
    );
  }

  unlock(account: string, dryRun: boolean): Promise<StepOutcome> {
    const set: Array<readonly [string, string]> = [[STATUS, 'active']];
    return this.change(
      account,
      dryRun,
      this.opts.checkStatus ? [STATUS] : undefined,
      (cur) => {
        if (!this.opts.checkStatus) return { set };
        const status = cur[STATUS];
        if (status === undefined) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `could not read ${STATUS} of ${account}`);
        const data = { previousStatus: status };
        if (status === 'locked') return { set, data };
        if (status === 'active') return { skip: { ok: true, changed: false, detail: `unlock ${account}: it was not locked (status active); nothing changed`, data } };
        return {
          skip: { ok: false, changed: false, detail: `unlock ${account}: refused, status is ${status}`, data, error: { code: 'FG_ACTION_REFUSED', message: `${account} has status ${status}; floodgate only unlocks accounts whose status is locked` } },
        };
      },
      set,
      `unlock ${account}`,
    );
  }

  forcePasswordChange(account: string, dryRun: boolean): Promise<StepOutcome> {
    const set: Array<readonly [string, string]> = [['zimbraPasswordMustChange', 'TRUE']];
    return this.change(account, dryRun, undefined, () => ({ set }), set, `force a password change for ${account}`);
  }

  invalidateSessions(account: string, dryRun: boolean): Promise<StepOutcome> {
    return this.change(
      account,
      dryRun,
      [VALIDITY],
      (cur) => {
        const raw = cur[VALIDITY] ?? '0';
        const n = Number(raw);
        if (!/^-?\d{1,10}$/.test(raw) || !Number.isSafeInteger(n)) throw new FloodgateError('FG_ACTION_COMMAND_FAILED', `${VALIDITY} of ${account} is not an integer`);
        const next = n >= 2147483647 ? 0 : n + 1;
        return { set: [[VALIDITY, String(next)]], data: { previousValue: n, newValue: next } };
      },
      [[VALIDITY, '<current+1>']],
      `invalidate the sessions of ${account}`,
    );
  }
}
