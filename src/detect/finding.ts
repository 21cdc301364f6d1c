/**
 * Finding: what a detector reports. Findings never act by themselves: the
 * policy combines them per account into decisions. Field names are a
 * contract (`floodgate replay` output): extend, don't rename.
 */
import { z } from 'zod';

export const severities = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];
/** Order of severities: info 0 … critical 4. */
export const severityRank: Readonly<Record<Severity, number>> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

/**
 * What a finding is evidence of. The policy reasons on these, not on
 * detector ids: volume alone never locks; volume plus a compromise signal does.
 */
export const signals = [
  // volume: a lot of mail, which a legitimate sender may also produce
  'volume',
  'fanout',
  // compromise: signs that the person sending is not the account's owner
  'forged-sender',
  'new-network',
  'many-networks',
  'listed-ip',
  'bounce-spike',
  'guessed-password',
  'spf-outbound-fail',
  // attacks on accounts, from IPs
  'brute-force',
  'spraying',
  // server configuration
  'open-relay',
  'wide-trusted-network',
  'relay-probing',
  'rbl-rejected',
  'spf-inbound-fail',
  'plaintext-auth',
] as const;
export type Signal = (typeof signals)[number];

export const volumeSignals: ReadonlySet<Signal> = new Set(['volume', 'fanout']);
export const compromiseSignals: ReadonlySet<Signal> = new Set([
  'forged-sender',
  'new-network',
  'many-networks',
  'listed-ip',
  'bounce-spike',
  'guessed-password',
  'spf-outbound-fail',
]);

export const evidenceSchema = z.object({
  file: z.string(),
  offset: z.number().int().nonnegative(),
  ts: z.number(),
  /** One line on what this piece of evidence shows. */
  note: z.string().optional(),
});
export type Evidence = z.infer<typeof evidenceSchema>;

export const findingSchema = z.object({
  type: z.literal('finding'),
  detector: z.string(),
  entity: z.object({ kind: z.enum(['account', 'ip']), id: z.string() }),
  severity: z.enum(severities),
  /** 0–100: how strongly this finding alone points at abuse. */
  score: z.number().min(0).max(100),
  ts: z.number(),
  signals: z.array(z.enum(signals)),
  summary: z.string(),
  /** The window's numbers that triggered it (counts, thresholds, samples). */
  window: z.record(z.string(), z.unknown()),
  /** Sample source lines, at most 10. */
  evidence: z.array(evidenceSchema).max(10),
  /** For IP findings that also name an account (e.g. the account an attacker got into). */
  account: z.string().optional(),
  ip: z.string().optional(),
});
export type Finding = z.infer<typeof findingSchema>;
