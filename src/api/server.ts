/**
 * The HTTP API of `floodgate run` (fastify): health and Prometheus metrics
 * without auth; findings and accounts for `read` tokens; lock and unlock for
 * `act` tokens. Every parameter is validated by a zod schema (400 naming the
 * field), and the same schemas describe the routes in GET /openapi.json.
 *
 * Auth: `Authorization: Bearer <token>`. Tokens are compared as SHA-256
 * digests with crypto.timingSafeEqual, against every configured token (no
 * early exit), so neither the length nor a prefix of a token leaks through
 * timing. The fastify logger is off: nothing here logs a header or a body.
 *
 * Lock/unlock from the API is an operator's explicit request: the actuator
 * given here runs for real (not in dry-run), and records the action with the
 * token's name as `by`.
 *
 * The data comes through `ApiData` (the SQLite store of `floodgate run`, or
 * ClickHouse for `floodgate api`); its methods and the policy's may be
 * synchronous or asynchronous.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { queuedMailHints, type ActionRecord, type Actuator, type QueuedMailLookup } from '../actions/index.js';
import { checkAccount } from '../actions/account.js';
import { FloodgateError, type ErrorCode } from '../core/errors.js';

export type Role = 'read' | 'act';

export interface ApiToken {
  name: string;
  role: Role;
  /** The secret itself (already resolved from tokenEnv). */
  token: string;
}

type MaybePromise<T> = T | Promise<T>;

export interface ApiFindingQuery {
  since?: number;
  until?: number;
  detector?: string;
  account?: string;
  limit: number;
}

/** What the API reads: implemented by the SQLite Store and by ClickhouseQueries. */
export interface ApiData {
  /** Newest first. */
  findings(q: ApiFindingQuery): MaybePromise<readonly object[]>;
  account(account: string, limit: number): MaybePromise<{ findings: readonly object[]; messages: readonly object[]; decisions: readonly object[]; actions: readonly object[] }>;
  /** The latest successful lock/unlock: locked by a lock, dryRun when that lock was a dry run. */
  lockState(account: string): MaybePromise<{ locked: boolean; dryRun: boolean }>;
  /** Queue ids the account's mail is on hold under, from the audit trail (released on unlock). */
  heldQueueIds?(account: string): MaybePromise<string[]>;
}

/** A backing service /health reports on (distributed mode: ClickHouse, Redis). */
export interface ServiceHealth {
  reachable: boolean;
  [detail: string]: unknown;
}

export interface ApiDeps {
  store: ApiData;
  tokens: readonly ApiToken[];
  /** Runs operators' lock/unlock: must not be in dry-run. Its audit sink should store the records. */
  actuator: Actuator;
  policy: { unlocked(account: string): MaybePromise<void>; lockedByOperator(account: string): MaybePromise<void>; isLocked(account: string): MaybePromise<boolean> };
  /** Prometheus text. */
  metrics: () => string;
  /** Per-input status for /health. */
  inputs?: () => unknown[];
  /** Seconds since start. */
  uptime?: () => number;
  /** Backing services for /health; any unreachable one makes it 503 `degraded`. */
  services?: () => Promise<Record<string, ServiceHealth>>;
  /** Called after the API changed detection state (an unlock), so it is checkpointed. */
  onChange?: () => void;
  /**
   * An operator's lock also holds the account's queued mail when `onLock`
   * (the config's policy.holdOnLock) unless the request says `hold: false`;
   * `queuedMailOf` names the senders and queue ids to look for.
   */
  hold?: { onLock: boolean; queuedMailOf?: QueuedMailLookup };
}

// ---- schemas (validation and OpenAPI) ----

const epochOrIso = z
  .string()
  .max(40)
  .transform((v, ctx) => {
    const n = /^\d{1,16}$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(n)) {
      ctx.addIssue({ code: 'custom', message: 'expected epoch milliseconds or an ISO 8601 time' });
      return z.NEVER;
    }
    return n;
  })
  .meta({ description: 'epoch milliseconds or ISO 8601 time', example: '2026-11-27T10:00:00Z' });

export const findingsQuery = z
  .object({
    since: epochOrIso.optional(),
    until: epochOrIso.optional(),
    detector: z.string().regex(/^[a-z0-9-]{1,64}$/, 'expected a detector id (lowercase letters, digits, -)').optional(),
    account: z.string().min(1).max(254).optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'expected a whole number from 1 to 1000')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 1000, 'expected a whole number from 1 to 1000')
      .optional()
      .meta({ description: 'at most this many findings, newest first (default 100, max 1000)' }),
  })
  .strict();

export const accountParams = z.object({ account: z.string().meta({ description: 'mail account, e.g. alice@example.com' }) }).strict();

export const actionBody = z
  .object({
    reason: z.string().max(500).optional().meta({ description: 'why (stored in the action record)' }),
    hold: z
      .boolean()
      .optional()
      .meta({ description: "lock only: also hold the account's queued mail (postsuper -h), found by its address, the senders it used and the queue ids the logs tie to it; default: the config's policy.holdOnLock" }),
    release: z
      .boolean()
      .optional()
      .meta({ description: "unlock only: release the account's mail its lock put on hold (default true); false keeps it held, e.g. to delete the spam with postsuper -d first" }),
  })
  .strict();

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const healthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  uptime: z.number(),
  inputs: z.array(z.object({ path: z.string(), lines: z.number(), lagBytes: z.number().nullable(), rotations: z.number() })),
  services: z.record(z.string(), z.object({ reachable: z.boolean() }).loose()).optional(),
});
const anyList = z.array(z.record(z.string(), z.unknown()));
const findingsResponse = z.object({ findings: anyList, count: z.number() });
const accountResponse = z.object({ account: z.string(), locked: z.boolean(), lockedDryRun: z.boolean(), policyLocked: z.boolean(), findings: anyList, messages: anyList, decisions: anyList, actions: anyList });
const actionResponse = z.object({ ok: z.boolean(), records: anyList });

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function describeZod(where: string, err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const field = i.path.length > 0 ? i.path.map(String).join('.') : undefined;
      if (i.code === 'unrecognized_keys') return `${where}: unknown field(s) ${i.keys.map((k) => `'${k}'`).join(', ')}`;
      return `${where}${field ? ` field '${field}'` : ''}: ${i.message}`;
    })
    .join('; ');
}

function parseOr400<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw new ApiError(400, 'FG_API_INVALID_REQUEST', describeZod(where, r.error));
  return r.data;
}

function validAccount(raw: string): string {
  const c = checkAccount(raw);
  if (!c.ok) throw new ApiError(400, c.error.code, c.error.message);
  return c.account;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024, return503OnClosing: true });
  const tokens = deps.tokens.map((t) => ({ name: t.name, role: t.role, digest: sha256(t.token) }));

  /** Constant-time lookup of the bearer token; every configured token is compared. */
  function authenticate(req: FastifyRequest, need: Role): { name: string; role: Role } {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer ([\x21-\x7e]{1,512})$/.exec(h) : null;
    if (!m) throw new ApiError(401, 'FG_API_UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
    const got = sha256(m[1]!);
    let found: (typeof tokens)[number] | undefined;
    for (const t of tokens) if (timingSafeEqual(t.digest, got) && found === undefined) found = t;
    if (!found) throw new ApiError(401, 'FG_API_UNAUTHORIZED', 'unknown token');
    if (need === 'act' && found.role !== 'act') throw new ApiError(403, 'FG_API_FORBIDDEN', `token '${found.name}' has the read role; this route needs act`);
    return { name: found.name, role: found.role };
  }

  app.setErrorHandler((err: unknown, _req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof ApiError) {
      if (err.status === 401) reply.header('www-authenticate', 'Bearer');
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    // A backing service down (distributed mode) is the service's state, not a bug: 503 with its code.
    if (err instanceof FloodgateError && (err.code === 'FG_CLICKHOUSE_UNAVAILABLE' || err.code === 'FG_REDIS_UNAVAILABLE')) {
      return reply.code(503).send({ error: { code: err.code, message: err.code === 'FG_REDIS_UNAVAILABLE' ? 'Redis is unreachable; try again' : 'ClickHouse is unreachable; try again' } });
    }
    const e = err as { statusCode?: number; message?: string };
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).send({ error: { code: 'FG_API_INVALID_REQUEST', message: e.message ?? 'bad request' } });
    }
    return reply.code(500).send({ error: { code: 'FG_INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'FG_API_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  app.get('/health', async (_req, reply) => {
    const services = deps.services ? await deps.services() : undefined;
    const ok = services === undefined || Object.values(services).every((s) => s.reachable);
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'degraded',
      uptime: Math.round((deps.uptime?.() ?? process.uptime()) * 1000) / 1000,
      inputs: deps.inputs?.() ?? [],
      ...(services ? { services } : {}),
    });
  });

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(deps.metrics()));

  app.get('/findings', async (req) => {
    authenticate(req, 'read');
    const q = parseOr400(findingsQuery, req.query, 'query');
    const account = q.account === undefined ? undefined : validAccount(q.account);
    const findings = await deps.store.findings({ since: q.since, until: q.until, detector: q.detector, account, limit: q.limit ?? 100 });
    return { findings, count: findings.length };
  });

  app.get('/accounts/:account', async (req) => {
    authenticate(req, 'read');
    const p = parseOr400(accountParams, req.params, 'path');
    const account = validAccount(p.account);
    const [data, st, policyLocked] = await Promise.all([deps.store.account(account, 100), deps.store.lockState(account), deps.policy.isLocked(account)]);
    return { account, locked: st.locked && !st.dryRun, lockedDryRun: st.locked && st.dryRun, policyLocked, ...data };
  });

  const act = (verb: 'lock' | 'unlock') => async (req: FastifyRequest, reply: FastifyReply) => {
    const who = authenticate(req, 'act');
    const p = parseOr400(accountParams, req.params, 'path');
    const account = validAccount(p.account); // before anything runs
    const body = parseOr400(actionBody, req.body, 'body');
    const reasons = [body.reason ?? `${verb} requested through the API`];
    let records: ActionRecord[];
    if (verb === 'lock') {
      if (body.release !== undefined) throw new ApiError(400, 'FG_API_INVALID_REQUEST', 'body: release applies to unlock only');
      const hold = body.hold ?? deps.hold?.onLock ?? false;
      // Asked before the lock's await, as the policy's lock does: what is queued when the operator acts.
      const hints = hold ? queuedMailHints(deps.hold?.queuedMailOf, account) : undefined;
      const r = await deps.actuator.lock(account, reasons, who.name);
      records = [r.lock, ...r.followUps];
      if (r.lock.ok) {
        await deps.policy.lockedByOperator(account); // the policy must not lock it a second time
        deps.onChange?.();
        if (hints) records.push(await deps.actuator.hold(account, { ...(await hints), by: who.name, reasons }));
      }
    } else {
      if (body.hold !== undefined) throw new ApiError(400, 'FG_API_INVALID_REQUEST', 'body: hold applies to lock only');
      // Read before the unlock, which ends the lock episode the holds belong to.
      const held = body.release === false ? [] : [...new Set([...deps.actuator.heldQueueIds(account), ...((await deps.store.heldQueueIds?.(account)) ?? [])])];
      records = [await deps.actuator.unlock(account, who.name, reasons)];
      if (records[0]!.ok) {
        await deps.policy.unlocked(account);
        deps.onChange?.();
        if (held.length > 0) records.push(await deps.actuator.release(account, { queueIds: held, by: who.name, reasons }));
      }
    }
    const first = records[0]!;
    const status = first.ok ? 200 : first.error?.code === 'FG_ACTION_REFUSED' ? 409 : first.error?.code === 'FG_ACTION_INVALID_ACCOUNT' ? 400 : 502;
    return reply.code(status).send({ ok: first.ok, records });
  };
  app.post('/accounts/:account/lock', act('lock'));
  app.post('/accounts/:account/unlock', act('unlock'));

  app.get('/openapi.json', async () => openApiDocument());
  return app;
}

// ---- OpenAPI ----

function jsonSchema(s: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const j = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  delete j.$schema;
  return j;
}

function parameters(schema: z.ZodObject, where: 'query' | 'path'): unknown[] {
  const shape = schema.shape as Record<string, z.ZodType>;
  return Object.entries(shape).map(([name, s]) => {
    const js = jsonSchema(s, 'input');
    return { name, in: where, required: where === 'path' || !s.safeParse(undefined).success, schema: js, ...(typeof js.description === 'string' ? { description: js.description } : {}) };
  });
}

const json = (s: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema: jsonSchema(s) } } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), json(errorSchema, { 400: 'invalid request (the message names the field)', 401: 'no or unknown token', 403: 'token lacks the act role', 409: 'refused by the account state', 502: 'the action failed', 503: 'a backing service (ClickHouse, Redis) is unreachable' }[c] ?? 'error')]));

export function openApiDocument(): Record<string, unknown> {
  const bearer = [{ bearer: [] }];
  const actOp = (verb: string) => ({
    summary: `${verb} an account now (runs for real, recorded with the token's name)`,
    security: bearer,
    parameters: parameters(accountParams, 'path'),
    requestBody: { required: false, content: { 'application/json': { schema: jsonSchema(actionBody, 'input') } } },
    responses: { 200: json(actionResponse, 'the action records'), ...errors(400, 401, 403, 409, 502, 503) },
  });
  return {
    openapi: '3.1.0',
    info: { title: 'floodgate', version: '1', description: 'Findings, accounts and lock/unlock of a running floodgate.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from api.tokens; role read or act' } } },
    paths: {
      '/health': { get: { summary: 'liveness, input lag and backing services', responses: { 200: json(healthSchema, 'ok'), 503: json(healthSchema, 'a backing service (ClickHouse, Redis) is unreachable') } } },
      '/metrics': { get: { summary: 'Prometheus metrics (no account or IP labels)', responses: { 200: { description: 'text exposition', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/findings': { get: { summary: 'findings, newest first', security: bearer, parameters: parameters(findingsQuery, 'query'), responses: { 200: json(findingsResponse, 'findings'), ...errors(400, 401, 503) } } },
      '/accounts/{account}': { get: { summary: "an account's findings, messages, decisions, actions and lock state", security: bearer, parameters: parameters(accountParams, 'path'), responses: { 200: json(accountResponse, 'the account'), ...errors(400, 401, 503) } } },
      '/accounts/{account}/lock': { post: actOp('lock') },
      '/accounts/{account}/unlock': { post: actOp('unlock') },
      '/openapi.json': { get: { summary: 'this document', responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } },
    },
  };
}
