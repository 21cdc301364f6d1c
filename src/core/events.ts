/**
 * Event: what parsers produce from LogRecords. A discriminated union on
 * `kind`. The zod schema is the single source of truth: the TypeScript types
 * are inferred from it, and it validates events wherever they cross a system
 * edge (Kafka, files, golden tests).
 *
 * Field names are a contract read by other tools (`floodgate parse` output):
 * extend, don't rename.
 */
import { z } from 'zod';

const source = z.object({ file: z.string(), offset: z.number().int().nonnegative() });

const base = {
  ts: z.number(),
  host: z.string(),
  program: z.string(),
  src: source,
};

/** SMTP-ish service name: `smtpd`, `submission`, `smtps`, `postscreen`, ... */
const service = z.string();

export const smtpRejectCategories = [
  'relay-denied',
  'rbl',
  'sender',
  'recipient',
  'helo',
  'policy',
  'spf',
  'client',
  'milter',
  'size',
  'rate',
  'protocol',
  'other',
] as const;

export const authProtocols = [
  'smtp',
  'imap',
  'pop3',
  'soap',
  'activesync',
  'http',
  'managesieve',
  'lmtp',
  'other',
] as const;

export const deliveryStatuses = [
  'sent',
  'deferred',
  'bounced',
  'expired',
  'undeliverable',
  'deliverable',
  'softbounce',
] as const;

export const spfResults = ['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror'] as const;

export const eventSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('smtp.connect'),
    ...base,
    ip: z.string(),
    clientHost: z.string(),
    service,
  }),
  z.object({
    kind: z.literal('smtp.disconnect'),
    ...base,
    ip: z.string(),
    clientHost: z.string(),
    service,
    /** Postfix's command summary, e.g. `ehlo=1 auth=0/1 quit=1 commands=2/3`. */
    commands: z.string().optional(),
    /** True when the summary shows a failed AUTH (`auth=0/N`). */
    authFailed: z.boolean().optional(),
  }),
  z.object({
    kind: z.literal('smtp.tls'),
    ...base,
    ip: z.string().optional(),
    clientHost: z.string().optional(),
    service,
    direction: z.enum(['in', 'out']),
    tlsProtocol: z.string(),
    cipher: z.string(),
    trust: z.string().optional(),
  }),
  z.object({
    kind: z.literal('smtp.client'),
    ...base,
    queueId: z.string(),
    ip: z.string(),
    clientHost: z.string(),
    service,
    saslMethod: z.string().optional(),
    /** The SASL username: the account that authenticated. */
    account: z.string().optional(),
    saslSender: z.string().optional(),
    /** `orig_client=` on content-filter re-injection. */
    origClientIp: z.string().optional(),
    /** `orig_queue_id=` on content-filter re-injection: the queue id the message had before the filter. */
    origQueueId: z.string().optional(),
  }),
  z.object({
    kind: z.literal('auth'),
    ...base,
    source: z.enum(['postfix', 'saslauthd', 'zimbra', 'dovecot']),
    protocol: z.enum(authProtocols),
    outcome: z.enum(['success', 'failure']),
    account: z.string().optional(),
    ip: z.string().optional(),
    clientHost: z.string().optional(),
    method: z.string().optional(),
    reason: z.string().optional(),
    /** Whether the session was encrypted, where the line tells. */
    tls: z.boolean().optional(),
    service: z.string().optional(),
    userAgent: z.string().optional(),
    /** Zimbra thread that served it (tells SSL vs plain listener). */
    thread: z.string().optional(),
    /** Failed attempts one line stands for (dovecot `auth failed, N attempts`). */
    attempts: z.number().int().optional(),
  }),
  z.object({
    kind: z.literal('smtp.reject'),
    ...base,
    queueId: z.string().optional(),
    ip: z.string().optional(),
    clientHost: z.string().optional(),
    service,
    action: z.enum(['reject', 'discard', 'hold', 'filter', 'redirect', 'warn', 'defer']),
    stage: z.string(),
    code: z.number().int().optional(),
    dsn: z.string().optional(),
    category: z.enum(smtpRejectCategories),
    /** DNSBL zone for `rbl` rejects. */
    list: z.string().optional(),
    reason: z.string(),
    from: z.string().optional(),
    to: z.string().optional(),
    helo: z.string().optional(),
    proto: z.string().optional(),
  }),
  z.object({
    kind: z.literal('smtp.lost'),
    ...base,
    ip: z.string(),
    clientHost: z.string(),
    service,
    reason: z.enum(['lost', 'timeout', 'too-many-errors']),
    after: z.string().optional(),
  }),
  z.object({
    kind: z.literal('dnsbl'),
    ...base,
    ip: z.string(),
    list: z.string(),
    reply: z.string(),
  }),
  z.object({
    kind: z.literal('postscreen'),
    ...base,
    action: z.enum([
      'connect',
      'disconnect',
      'pass-new',
      'pass-old',
      'dnsbl',
      'pregreet',
      'hangup',
      'allowlisted',
      'denylisted',
      'command-pipelining',
      'non-smtp-command',
      'bare-newline',
      'command-time-limit',
      'command-count-limit',
      'command-length-limit',
      'noqueue',
      'other',
    ]),
    ip: z.string(),
    port: z.number().int().optional(),
    rank: z.number().optional(),
    detail: z.string().optional(),
    /** Seconds after connect (`PREGREET n after T`, `HANGUP after T`). */
    delay: z.number().optional(),
  }),
  z.object({
    kind: z.literal('queue.messageid'),
    ...base,
    queueId: z.string(),
    messageId: z.string(),
  }),
  z.object({
    kind: z.literal('cleanup.action'),
    ...base,
    queueId: z.string(),
    action: z.string(),
    /** What triggered it: `header`, `body`, `milter`, ... */
    check: z.string(),
    /** The matched header/body text, or the milter stage (`END-OF-MESSAGE`). */
    detail: z.string(),
    ip: z.string().optional(),
    clientHost: z.string().optional(),
    from: z.string().optional(),
    to: z.string().optional(),
    proto: z.string().optional(),
    helo: z.string().optional(),
    /** The action's text (`5.7.1 text` of a reject, the replacement of a replace, a milter's reply). */
    reason: z.string().optional(),
  }),
  z.object({
    kind: z.literal('queue.from'),
    ...base,
    queueId: z.string(),
    /** Envelope sender; empty string for the null sender `<>`. */
    sender: z.string(),
    size: z.number().optional(),
    nrcpt: z.number().optional(),
  }),
  z.object({
    kind: z.literal('queue.removed'),
    ...base,
    queueId: z.string(),
  }),
  z.object({
    kind: z.literal('queue.expired'),
    ...base,
    queueId: z.string(),
    sender: z.string(),
    reason: z.string(),
  }),
  z.object({
    kind: z.literal('delivery'),
    ...base,
    queueId: z.string(),
    agent: z.string(),
    to: z.string(),
    origTo: z.string().optional(),
    relay: z.string(),
    relayIp: z.string().optional(),
    delay: z.number().optional(),
    delays: z.string().optional(),
    dsn: z.string().optional(),
    status: z.enum(deliveryStatuses),
    reply: z.string(),
    /** Queue id the next hop gave the message (content-filter re-injection or a relay). */
    queuedAs: z.string().optional(),
    /** `conn_use=N`: the Nth delivery over a cached SMTP connection. */
    connUse: z.number().int().optional(),
  }),
  z.object({
    kind: z.literal('bounce.notify'),
    ...base,
    queueId: z.string(),
    /** Queue id of the notification message that was created. */
    childQueueId: z.string(),
    notification: z.string(),
  }),
  z.object({
    kind: z.literal('queue.pickup'),
    ...base,
    queueId: z.string(),
    uid: z.number().int().optional(),
    sender: z.string(),
  }),
  z.object({
    kind: z.literal('anvil'),
    ...base,
    statistic: z.string(),
    value: z.number(),
    /** Rate window in seconds (`max connection rate 5/60s` → 60). */
    period: z.number().optional(),
    service: z.string().optional(),
    ip: z.string().optional(),
  }),
  z.object({
    kind: z.literal('postsuper'),
    ...base,
    queueId: z.string().optional(),
    action: z.enum(['removed', 'hold', 'released', 'requeued', 'expired']),
    count: z.number().int().optional(),
  }),
  z.object({
    kind: z.literal('spf'),
    ...base,
    daemon: z.enum(['python', 'perl']),
    result: z.enum(spfResults),
    ip: z.string().optional(),
    helo: z.string().optional(),
    sender: z.string().optional(),
    receiver: z.string().optional(),
    identity: z.string().optional(),
    reason: z.string().optional(),
  }),
  z.object({
    kind: z.literal('amavis'),
    ...base,
    verdict: z.string(),
    category: z.string(),
    ip: z.string().optional(),
    sender: z.string(),
    recipients: z.array(z.string()),
    queueId: z.string().optional(),
    queuedAs: z.array(z.string()).optional(),
    messageId: z.string().optional(),
    mailId: z.string().optional(),
    hits: z.number().optional(),
    size: z.number().optional(),
    /** Policy bank names, e.g. `ORIGINATING LOCAL`, `MYNETS`, `DEFAULT`. */
    policy: z.string().optional(),
    /** Disposition summary in braces, e.g. `RelayedOutbound`, `DiscardedInbound,Quarantined`. */
    disposition: z.string().optional(),
    /** Detail in parentheses after the category: virus names, banned part, ... */
    detail: z.string().optional(),
    /** Second bracketed IP: the original client amavis found in the Received headers. */
    originIp: z.string().optional(),
  }),
]);

export type Event = z.infer<typeof eventSchema>;
export type EventKind = Event['kind'];
export type EventOf<K extends EventKind> = Extract<Event, { kind: K }>;
