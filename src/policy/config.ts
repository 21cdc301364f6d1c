/** Policy configuration: zod schema with safe defaults (dry-run, a lock budget, volume alone never locks). */
import { z } from 'zod';
import { signals, type Signal } from '../detect/finding.js';

/** How much each kind of evidence adds to an account's risk (0–100 when the finding's own score is 100). */
export const defaultWeights: Record<Signal, number> = {
  volume: 35,
  fanout: 30,
  'forged-sender': 55,
  'new-network': 25,
  'many-networks': 35,
  'listed-ip': 50,
  'bounce-spike': 35,
  'guessed-password': 55,
  'spf-outbound-fail': 30,
  'brute-force': 10,
  spraying: 0,
  'open-relay': 0,
  'wide-trusted-network': 0,
  'relay-probing': 0,
  'rbl-rejected': 0,
  'spf-inbound-fail': 0,
  'plaintext-auth': 0,
};

const weightsSchema = z
  .partialRecord(z.enum(signals), z.number().min(0).max(100))
  .default({})
  .transform((w) => ({ ...defaultWeights, ...w }) as Record<Signal, number>);

export const policyConfigSchema = z
  .object({
    /** Decide and record, but run nothing. Auto-lock starts in dry-run unless the config says otherwise. */
    dryRun: z.boolean().default(true),
    /** Findings on one account are combined over this much log time. */
    correlationWindowMs: z.number().int().positive().default(3600_000),
    weights: weightsSchema,
    /** Risk at which an alert is raised. */
    alertScore: z.number().min(0).max(100).default(30),
    /** Risk at which the account is locked (with a volume AND a compromise signal, see below). */
    lockScore: z.number().min(0).max(100).default(70),
    /**
     * Volume alone (a newsletter's peak, an announcement to all staff) never
     * locks: a lock needs a volume signal together with a compromise signal
     * (forged sender, new/many networks, listed IP, bounce spike, guessed
     * password, outbound SPF fail). Set false to lock on score alone.
     */
    lockNeedsVolumeAndCompromise: z.boolean().default(true),
    /** Circuit breaker: at most this many locks per hour; beyond it, alert instead. */
    lockBudgetPerHour: z.number().int().min(0).default(5),
    /** After an alert on an account, do not alert again for this long unless the action escalates. */
    alertCooldownMs: z.number().int().min(0).default(3600_000),
    /** Hold the account's queued mail when it is locked. */
    holdOnLock: z.boolean().default(true),
    allowlist: z
      .object({
        accounts: z.array(z.string()).default([]),
        ips: z.array(z.string()).default([]),
        cidrs: z.array(z.string()).default([]),
      })
      .default({ accounts: [], ips: [], cidrs: [] }),
  })
  .strict();

export type PolicyConfig = z.output<typeof policyConfigSchema>;
