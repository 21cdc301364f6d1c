/**
 * The `actions` section of the config, validated once and frozen. Defaults
 * are the safe ones: dry-run on, follow-ups off, no webhooks. Secrets (SOAP
 * admin password, webhook HMAC secrets) are best given as the *name* of an
 * environment variable; they may be written in the file, but are never
 * logged or copied into a record either way.
 */
import { z } from 'zod';
import { FloodgateError } from '../core/errors.js';

const arg = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain NUL');
const programPath = arg.refine((s) => !s.startsWith('-'), 'must be a program path, not an option');
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
const timeout = (ms: number) => z.number().int().positive().max(600_000).default(ms);

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

export const webhookFormats = ['generic', 'slack', 'teams'] as const;
export type WebhookFormat = (typeof webhookFormats)[number];

export const webhookTargetSchema = z
  .object({
    /** Names the target in records and the outbox (the URL itself is not recorded: Slack/Teams URLs are credentials). */
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1–64 letters, digits, _ . -'),
    url: httpUrl,
    format: z.enum(webhookFormats).default('generic'),
    /** HMAC secret for X-Floodgate-Signature; prefer secretEnv. */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    secretEnv: envName.optional(),
  })
  .strict();

export const actionsConfigSchema = z
  .object({
    /** Record what would run, run nothing. Webhooks are still sent (they are how a dry run is watched), flagged dryRun. */
    dryRun: z.boolean().default(true),
    /** How accounts are locked: the zmprov command, or the admin SOAP API. */
    backend: z.enum(['zmprov', 'soap']).default('zmprov'),
    /**
     * Read zimbraAccountStatus before changing it: lock leaves locked/closed/pending accounts alone
     * and refuses one in maintenance; unlock only reactivates an account that is `locked`, so it can
     * never reopen a closed one. Costs one more zmprov start (a JVM: ~1–3 s).
     */
    checkStatus: z.boolean().default(true),
    zmprov: z
      .object({
        path: programPath.default('/opt/zimbra/bin/zmprov'),
        /** Argv put before the command, e.g. ['sudo', '-n', '-u', 'zimbra'] or ['ssh', 'mail1']. */
        prefix: z.array(arg).default([]),
        timeoutMs: timeout(60_000),
      })
      .strict()
      .prefault({}),
    soap: z
      .object({
        url: httpUrl
          .refine((u) => {
            const p = new URL(u);
            return p.protocol === 'https:' || isLoopback(p.hostname);
          }, 'must be https (plain http only to 127.0.0.1/localhost: the admin password travels in it)')
          .default('https://localhost:7071/service/admin/soap'),
        adminUser: z.string().min(1).optional(),
        /** Environment variable holding the admin password. */
        adminPasswordEnv: envName.default('FLOODGATE_ZIMBRA_ADMIN_PASSWORD'),
        /** The password itself; prefer adminPasswordEnv. */
        adminPassword: z.string().min(1).optional(),
        timeoutMs: timeout(15_000),
      })
      .strict()
      .prefault({}),
    followUps: z
      .object({
        /** After a lock: `zimbraPasswordMustChange TRUE`. */
        forcePasswordChange: z.boolean().default(false),
        /** After a lock: bump `zimbraAuthTokenValidityValue`, which invalidates every auth token already issued. */
        invalidateSessions: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    queue: z
      .object({
        postqueuePath: programPath.default('/opt/zimbra/common/sbin/postqueue'),
        postsuperPath: programPath.default('/opt/zimbra/common/sbin/postsuper'),
        prefix: z.array(arg).default([]),
        timeoutMs: timeout(60_000),
      })
      .strict()
      .prefault({}),
    webhooks: z
      .object({
        targets: z.array(webhookTargetSchema).default([]),
        timeoutMs: timeout(10_000),
        maxAttempts: z.number().int().min(1).max(20).default(5),
        baseDelayMs: z.number().int().min(0).max(600_000).default(1_000),
        maxDelayMs: z.number().int().min(0).max(3_600_000).default(60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.backend === 'soap' && c.soap.adminUser === undefined) {
      ctx.addIssue({ code: 'custom', path: ['soap', 'adminUser'], message: 'is required when backend is soap (e.g. admin@example.com)' });
    }
    const names = new Set<string>();
    c.webhooks.targets.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: ['webhooks', 'targets', i, 'name'], message: `duplicate target name ${JSON.stringify(t.name)}` });
      names.add(t.name);
      if (t.secret !== undefined && t.secretEnv !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['webhooks', 'targets', i], message: 'give secret or secretEnv, not both' });
      }
    });
  });

export type ActionsConfig = z.infer<typeof actionsConfigSchema>;
export type ActionsConfigInput = z.input<typeof actionsConfigSchema>;
export type WebhookTargetConfig = z.infer<typeof webhookTargetSchema>;

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Validates and freezes; every problem is reported at once as FG_CONFIG_INVALID, each naming its key under `actions.`. */
export function parseActionsConfig(input: unknown): Readonly<ActionsConfig> {
  const r = actionsConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `actions.${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new FloodgateError('FG_CONFIG_INVALID', `invalid actions config:\n  ${lines.join('\n  ')}`);
  }
  return deepFreeze(r.data);
}
