/**
 * ActionRecord: the audit trail's unit. Every action floodgate takes, would
 * take (dry-run) or refuses produces one, with who asked and why, and — for
 * commands — the exact argument vector, so an administrator can see and
 * replay precisely what ran. Field names are a contract (audit store, API):
 * extend, don't rename.
 */
import { z } from 'zod';
import { errorCodes, type ErrorCode } from '../core/errors.js';

export const actionKinds = ['lock', 'unlock', 'hold', 'release', 'webhook', 'password-change', 'invalidate-sessions'] as const;
export type ActionKind = (typeof actionKinds)[number];

export const actionBackends = ['zmprov', 'soap', 'postfix', 'webhook'] as const;
export type ActionBackend = (typeof actionBackends)[number];

const errorCodeSchema = z.custom<ErrorCode>((v) => typeof v === 'string' && Object.hasOwn(errorCodes, v));

export const actionErrorSchema = z.object({ code: errorCodeSchema, message: z.string() });
export type ActionError = z.infer<typeof actionErrorSchema>;

export const actionRecordSchema = z.object({
  id: z.string(),
  /** When the action finished (ms since epoch, from the injected clock). */
  ts: z.number(),
  action: z.enum(actionKinds),
  /** The validated, lowercased account; for a refused name, its JSON-quoted form (so it cannot pass for a real one). */
  account: z.string(),
  /** Whether the action did what was asked (or, in dry-run, would be attempted). A no-op such as unlocking an active account is ok. */
  ok: z.boolean(),
  dryRun: z.boolean(),
  /** Whether anything on the server changed (false for dry-run, no-ops and failures). */
  changed: z.boolean(),
  backend: z.enum(actionBackends),
  /** One human sentence on what happened. */
  detail: z.string(),
  /** The argv that changed (or in dry-run: would change) the server, prefix included. */
  command: z.array(z.string()).optional(),
  /** Read-only commands run (or that would run) before `command`, in order, e.g. `zmprov ga`, `postqueue -j`. */
  reads: z.array(z.array(z.string())).optional(),
  error: actionErrorSchema.optional(),
  /** Who asked: 'policy', or the API user. */
  by: z.string(),
  /** Why: the policy's reasons (finding summaries, detector ids) or the API user's note. */
  reason: z.array(z.string()),
  /** Structured specifics: previous status, queue ids held, webhook deliveries, the SOAP request made. */
  data: z.record(z.string(), z.unknown()).optional(),
});
export type ActionRecord = z.infer<typeof actionRecordSchema>;

/** What an action step reports before the Actuator turns it into a record. */
export interface StepOutcome {
  ok: boolean;
  changed: boolean;
  detail: string;
  command?: string[];
  reads?: string[][];
  error?: ActionError;
  data?: Record<string, unknown>;
}

/** Receives every record; the durable audit store. Awaited: if it throws, the caller of the action sees the error. */
export type AuditSink = (record: ActionRecord) => void | Promise<void>;

/** Debug/ops log. Never receives secrets; accounts only at debug level (see STYLE.md). */
export type ActionLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
