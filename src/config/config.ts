/**
 * floodgate.yaml: one file, validated by zod. Every problem is reported at
 * once, each naming its key and what is expected; every option has a safe
 * default (dry-run, localhost API, active DNS off), so `{}` is a valid
 * config. `floodgate config schema` prints the JSON Schema for editors.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { detectors as allDetectors } from '../../detectors/index.js';
import type { Detector } from '../../detectors/types.js';
import { FloodgateError } from '../core/errors.js';
import { envelopeFormats } from '../envelope/envelope.js';
import { ZoneClock } from '../envelope/zone.js';
import { policyConfigSchema } from '../policy/config.js';
import { parseCidrs } from '../detect/site.js';
import { clickhouseSchema, kafkaSchema, redisSchema, shipSchema } from './distributed.js';

const cidrList = (what: string) =>
  z
    .array(z.string())
    .superRefine((list, ctx) => {
      try {
        parseCidrs(list, what);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
      }
    });

export const siteSchema = z
  .object({
    localDomains: z.array(z.string()).default([]),
    trustedNetworks: cidrList('site.trustedNetworks').default(['127.0.0.0/8', '::1/128']),
    mailHosts: cidrList('site.mailHosts').default([]),
    outboundIps: cidrList('site.outboundIps').default([]),
    aliases: z.record(z.string(), z.array(z.string())).default({}),
    allowedSenderDomains: z.array(z.string()).default([]),
  })
  .strict();

export const inputSchema = z
  .object({
    path: z.string().min(1),
    format: z.enum(envelopeFormats).default('auto'),
    /** Host for lines that carry none (mailbox.log). */
    host: z.string().default('localhost'),
  })
  .strict();

export const dnsSchema = z
  .object({
    /** Active DNS checks (DNSBL for logins, outbound SPF). Off unless enabled here. */
    enabled: z.boolean().default(false),
    /** Resolvers as `ip` or `ip:port`; empty = the system's. */
    servers: z.array(z.string()).default([]),
    timeoutMs: z.number().int().positive().max(30_000).default(2000),
    maxQueriesPerSecond: z.number().int().positive().default(50),
  })
  .strict();

export const apiSchema = z
  .object({
    /** host:port; the default listens on loopback only. */
    listen: z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8025').default('127.0.0.1:8025'),
    /**
     * API tokens. `read` sees findings and accounts; `act` may also lock and
     * unlock. Give the token itself in `token`, or the name of an environment
     * variable holding it in `tokenEnv` (keeps secrets out of the file).
     */
    tokens: z
      .array(
        z
          .object({
            name: z.string().min(1),
            role: z.enum(['read', 'act']),
            token: z.string().min(16, 'tokens must be at least 16 characters').optional(),
            tokenEnv: z.string().optional(),
          })
          .strict()
          .refine((t) => (t.token === undefined) !== (t.tokenEnv === undefined), 'give exactly one of token or tokenEnv'),
      )
      .default([]),
  })
  .strict();

export const correlatorSchema = z
  .object({
    idleTimeoutMs: z.number().int().positive().default(2 * 3600_000),
    maxEntries: z.number().int().positive().default(200_000),
    /**
     * A message with a recipient still deferred this long after its first
     * deferral is held in the queue: detection counts its recipients as they
     * settle, not when it ends (see the README, "Held mail").
     */
    heldAfterMs: z.number().int().positive().default(600_000),
  })
  .strict();

/** Per-detector section: `enabled` plus that detector's own options. */
function detectorsSchema(list: readonly Detector[]) {
  const shape: Record<string, z.ZodType> = {};
  for (const d of list) {
    shape[d.id] = z
      .object({ enabled: z.boolean().default(true) })
      .passthrough()
      .default({ enabled: true });
  }
  return z.object(shape).strict().default({});
}

export function configSchema(list: readonly Detector[] = allDetectors) {
  return z
    .object({
      /** IANA zone of log timestamps without an offset. Default: $TZ or the machine's zone. */
      timezone: z
        .string()
        .optional()
        .superRefine((v, ctx) => {
          const err = v === undefined ? undefined : ZoneClock.check(v);
          if (err) ctx.addIssue({ code: 'custom', message: err });
        }),
      inputs: z.array(inputSchema).default([]),
      site: siteSchema.default(siteSchema.parse({})),
      detectors: detectorsSchema(list),
      policy: policyConfigSchema.default(policyConfigSchema.parse({})),
      /** Action settings (lock backend, hold, webhooks); validated by src/actions. */
      actions: z.record(z.string(), z.unknown()).default({}),
      dns: dnsSchema.default(dnsSchema.parse({})),
      api: apiSchema.default(apiSchema.parse({})),
      correlator: correlatorSchema.default(correlatorSchema.parse({})),
      /** Embedded store (SQLite) for `floodgate run`. */
      store: z
        .object({
          path: z.string().min(1).default('floodgate.db'),
          /** Findings, decisions, actions and messages older than this many days are pruned (at start and hourly). */
          retentionDays: z.number().int().positive().max(36500).default(30),
        })
        .strict()
        .default({ path: 'floodgate.db', retentionDays: 30 }),
      /** Distributed mode (`floodgate ship|detect|api`); unused by replay/run. */
      kafka: kafkaSchema.default(kafkaSchema.parse({})),
      clickhouse: clickhouseSchema.default(clickhouseSchema.parse({})),
      redis: redisSchema.default(redisSchema.parse({})),
      ship: shipSchema.default(shipSchema.parse({})),
    })
    .strict();
}

export type FloodgateConfig = z.output<ReturnType<typeof configSchema>> & { detectorConfigs: Record<string, unknown>; enabledDetectors: Detector[] };

function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[') || '(top level)';
}

function describeIssue(i: z.core.$ZodIssue): string {
  const key = issuePath(i.path);
  if (i.code === 'unrecognized_keys') return `${key === '(top level)' ? '' : key + ': '}unknown key(s) ${i.keys.map((k) => `'${k}'`).join(', ')} (check the spelling; see 'floodgate config schema')`;
  return `${key}: ${i.message}`;
}

/** Validate a parsed document; throws FG_CONFIG_INVALID listing every problem. */
export function validateConfig(doc: unknown, source = 'config', list: readonly Detector[] = allDetectors): FloodgateConfig {
  const problems: string[] = [];
  const r = configSchema(list).safeParse(doc ?? {});
  if (!r.success) problems.push(...r.error.issues.map(describeIssue));
  const detectorConfigs: Record<string, unknown> = {};
  const enabled: Detector[] = [];
  const raw = (doc as { detectors?: Record<string, unknown> } | null | undefined)?.detectors ?? {};
  for (const d of list) {
    const section = (raw[d.id] ?? {}) as Record<string, unknown>;
    const { enabled: on, ...opts } = section;
    // Unknown keys in a detector's section are typos: reject them like everywhere else.
    const schema = d.config instanceof z.ZodObject ? d.config.strict() : d.config;
    const parsed = schema.safeParse(opts);
    if (!parsed.success) {
      for (const i of parsed.error.issues) problems.push(describeIssue({ ...i, path: ['detectors', d.id, ...i.path] } as z.core.$ZodIssue));
      continue;
    }
    detectorConfigs[d.id] = parsed.data;
    if (on !== false) enabled.push(d);
  }
  if (problems.length > 0 || !r.success) {
    throw new FloodgateError('FG_CONFIG_INVALID', `${source} is not valid:\n  - ${problems.join('\n  - ')}`);
  }
  return { ...r.data, detectorConfigs, enabledDetectors: enabled };
}

export function loadConfig(path: string | undefined, list: readonly Detector[] = allDetectors): FloodgateConfig {
  if (path === undefined) return validateConfig({}, 'default config', list);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FloodgateError('FG_CONFIG_INVALID', `cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new FloodgateError('FG_CONFIG_INVALID', `${path} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateConfig(doc, path, list);
}

/** JSON Schema of the config file, for editors (yaml-language-server). */
export function configJsonSchema(list: readonly Detector[] = allDetectors): unknown {
  const base = z.toJSONSchema(configSchema(list), { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, { properties?: Record<string, unknown> }> };
  const dets = base.properties.detectors;
  if (dets?.properties) {
    for (const d of list) {
      const own = z.toJSONSchema(d.config, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, unknown> };
      dets.properties[d.id] = { type: 'object', description: d.description, properties: { enabled: { type: 'boolean', default: true }, ...(own.properties ?? {}) }, additionalProperties: false };
    }
  }
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'floodgate.yaml', ...base };
}
