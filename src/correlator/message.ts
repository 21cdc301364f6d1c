/**
 * Message: one mail's story assembled from its log lines, across every
 * content-filter hop (amavis re-injection, DKIM signing) so that the final
 * deliveries are attributed to the original client and SASL user.
 * Field names are a contract (`floodgate parse --messages`): extend, don't rename.
 */
import type { Source } from '../core/record.js';

export interface Recipient {
  address: string;
  origTo?: string;
  status: string;
  dsn?: string;
  relay?: string;
  reply?: string;
  /** Time of the last delivery attempt (epoch ms). */
  ts: number;
  /** Number of delivery attempts seen (deferred then sent → 2). */
  attempts: number;
  /** True while the last status is only the hand-off to a content filter. */
  viaFilter?: boolean;
  /** Time of its first `deferred` status (epoch ms), while the message is open. */
  deferredSince?: number;
  /**
   * Handed to detection before the message ended (its message was held in
   * the queue: see CorrelatorOptions.onSettled). Readers that count a
   * finished message's recipients skip these: they were counted then.
   */
  settled?: boolean;
}

export interface Hop {
  queueId: string;
  clientIp?: string;
  clientHost?: string;
  service?: string;
  /** How the hop was linked to the one before: a delivery's `queued as`, or amavis's `queued_as`. */
  linkedBy?: 'delivery' | 'amavis';
}

export type MessageEnd = 'removed' | 'expired' | 'idle' | 'shed' | 'reused' | 'flush';

export interface Message {
  host: string;
  /** Queue id of the first hop: the id the client's submission got. */
  queueId: string;
  clientIp?: string;
  clientHost?: string;
  /** SASL username of the submitting client: the account that sent it. */
  saslUser?: string;
  saslMethod?: string;
  /** smtpd service that accepted it (`smtpd`, `submission`, `smtps`, ...). */
  service?: string;
  origin: 'smtp' | 'pickup' | 'bounce' | 'unknown';
  /** Envelope sender; '' for the null sender. */
  sender?: string;
  size?: number;
  nrcpt?: number;
  messageId?: string;
  recipients: Recipient[];
  firstTs: number;
  lastTs: number;
  hops: Hop[];
  amavis?: { verdict: string; category: string; hits?: number };
  /** Queue ids of the notifications (bounces) this message caused. */
  bounces?: string[];
  /** For a notification: queue id of the message it reports on. */
  bounceOf?: string;
  /** Post-queue actions seen: cleanup header/body/milter actions, postsuper hold... */
  actions?: string[];
  /** True when the mail left the queue normally (every hop removed). */
  complete: boolean;
  end: MessageEnd;
  /** Source of the first line seen for it. */
  src: Source;
  /**
   * When the correlator let it go more than 2 min after its last line's
   * time (idle, shed, a re-injection's grace ran out; not a flush at the
   * end of input): the newest log time then.
   * Volume detectors count it at this time (see messageTs): back at lastTs,
   * up to the idle timeout late, it lands in windows that moved on, and
   * whether they were swept yet depends on the other keys of the structure
   * (standalone's one store against a partition's, in distributed mode).
   */
  emittedTs?: number;
}
