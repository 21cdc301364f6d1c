/** Policy configuration: zod schema with safe defaults (dry-run, a lock budget, volume alone never locks). */
import { z } from 'zod';
import { compromiseSignals, signals, type Signal } from '../detect/finding.js';

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

/**
 * Compromise signals that say who is sending (someone other than the owner),
 * as opposed to what is sent: they corroborate a volume signal (see
 * `corroboration`). A bounce spike is left out: a legitimate user mailing a
 * stale list produces volume and bounces together.
 */
export const defaultCorroboratingSignals: Signal[] = ['forged-sender', 'new-network', 'many-networks', 'listed-ip', 'guessed-password', 'spf-outbound-fail'];

const corroborationSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Which compromise signals can corroborate volume (volume/fan-out themselves cannot: volume alone never locks). */
    signals: z.array(z.enum([...compromiseSignals] as [Signal, ...Signal[]])).default(defaultCorroboratingSignals),
    /**
     * A corroborating finding counts from this score: the detectors' "high" grade
     * (sending from a new network 65, a listed IP 70, foreign forged senders 65+,
     * outbound SPF fail 60, a guessed password 95). A login from a new network
     * without sending (25) or a sender at our own domain it does not own (40–55) does not.
     */
    minScore: z.number().min(0).max(100).default(60),
    /**
     * The volume finding must come at most this long after the corroborating
     * one, and the account's sending must have been normal until the compromise
     * began (its earliest evidence line): a volume finding from before it means
     * the owner was already sending a lot (an announcement, then a mail from a
     * phone on a new network), and that volume is not the intruder's. The
     * volume detectors need time to see a flood cross the account's hourly
     * threshold: 30 min covers floods at twice that threshold or faster.
     */
    withinMs: z.number().int().positive().default(30 * 60_000),
  })
  .strict()
  .prefault({});

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
     * How a volume finding and a corroborating compromise finding that follows
     * the takeover closely combine. The weighted sum discounts each signal
     * because legitimate use produces it too (a newsletter's volume, a
     * traveller's new network); when the account's own anomalous volume
     * follows a strong sign that someone else holds it, the two explain each
     * other and are not discounted: the pair's risk is
     * c + v·(100 − c)/100 (c, v: the two findings' scores, either one
     * independently pointing at abuse), and the account's risk is the larger of
     * that and the weighted sum. With the defaults a corroborated pair is
     * ≥ 72 (c ≥ 60, v ≥ 30 just above the account's threshold), so it locks
     * as soon as the volume detectors report; a higher lockScore makes it wait
     * for more volume.
     */
    corroboration: corroborationSchema,
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
