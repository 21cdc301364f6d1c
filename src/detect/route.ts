/**
 * Routes: which entities an event or correlated message concerns, so that
 * distributed mode can deliver it to the partition owning each one. An item
 * about an account and an IP (a login, an authenticated submission) is
 * delivered once per route; a detector updates state keyed by an entity,
 * and emits findings about it, only in the delivery that owns that entity
 * (DeliveryOwner, asked through DetectorDeps.owner). Standalone mode
 * delivers every item once with ALL_ROUTES: every entity is owned.
 *
 * Keys are derived exactly as the detectors derive theirs: an event's
 * `account` (auth, smtp.client) and a message's `saslUser`, compared
 * case-insensitively and trimmed (detectors/account-util normAccount; the
 * volume detectors lowercase); any event's client `ip`, a message's
 * `clientIp`, as written. Items with neither go by host, so they still
 * reach storage.
 */
import type { Event } from '../core/events.js';
import type { Message } from '../correlator/message.js';

export type RouteKind = 'account' | 'ip' | 'host';

export interface Route {
  kind: RouteKind;
  key: string;
}

/** "Owns every entity": the one delivery of an item in standalone mode. */
export const ALL_ROUTES: { readonly kind: 'all' } = Object.freeze({ kind: 'all' as const });
export type AllRoutes = typeof ALL_ROUTES;
export type Delivery = Route | AllRoutes;

/**
 * The routing key of an account name: trimmed and lowercased (what
 * normAccount gives), or the name as written when that leaves nothing, so
 * every detector's spelling of one account lands in one partition.
 */
export function accountKey(account: string): string {
  const k = account.trim().toLowerCase();
  return k.length > 0 ? k : account;
}

export function accountRoute(account: string): Route {
  return { kind: 'account', key: accountKey(account) };
}

export function ipRoute(ip: string): Route {
  return { kind: 'ip', key: ip };
}

function isEvent(item: Event | Message): item is Event {
  return (item as { kind?: unknown }).kind !== undefined;
}

/** The account an item names (auth / smtp.client `account`, a message's SASL user). */
function accountOf(item: Event | Message): string | undefined {
  if (!isEvent(item)) return item.saslUser;
  return item.kind === 'auth' || item.kind === 'smtp.client' ? item.account : undefined;
}

/** The client IP an item names. */
function ipOf(item: Event | Message): string | undefined {
  return isEvent(item) ? (item as { ip?: string }).ip : item.clientIp;
}

/**
 * The routes an item needs, the account's first: [account?, ip?], or
 * [host] when it names neither. The first route is the item's primary
 * delivery (where it is stored, and where state that belongs to no entity
 * is updated).
 */
export function routesOf(item: Event | Message): Route[] {
  const account = accountOf(item);
  const ip = ipOf(item);
  if (account === undefined) return ip === undefined ? [{ kind: 'host', key: item.host }] : [{ kind: 'ip', key: ip }];
  const a: Route = { kind: 'account', key: accountKey(account) };
  return ip === undefined ? [a] : [a, { kind: 'ip', key: ip }];
}

/** Whether `route` is the first of routesOf(item), without building the list. */
export function isPrimaryRoute(item: Event | Message, route: Route): boolean {
  return route.kind !== 'ip' || accountOf(item) === undefined;
}

/** The Kafka message key of a route: `a:<account>`, `i:<ip>`, `h:<host>`. */
export function routeKey(route: Route): string {
  return (route.kind === 'account' ? 'a:' : route.kind === 'ip' ? 'i:' : 'h:') + route.key;
}

/**
 * What the delivery in progress owns, asked by detectors before each keyed
 * update or finding. The engine sets it around each delivery (one object
 * per engine, mutated: nothing is allocated per event). Outside any
 * delivery (e.g. in a DNS callback) it owns nothing: asynchronous results
 * go back through DetectorDeps.handOff to the delivery owning their entity.
 */
export class DeliveryOwner {
  private route: Delivery | undefined = undefined;
  private item: Event | Message | undefined = undefined;

  /** The delivery in progress (undefined between deliveries). */
  get current(): Delivery | undefined {
    return this.route;
  }

  get currentItem(): Event | Message | undefined {
    return this.item;
  }

  enter(route: Delivery | undefined, item: Event | Message | undefined): void {
    this.route = route;
    this.item = item;
  }

  account(id: string): boolean {
    const r = this.route;
    if (r === undefined) return false;
    if (r.kind === 'all') return true;
    return r.kind === 'account' && (id === r.key || accountKey(id) === r.key);
  }

  ip(id: string): boolean {
    const r = this.route;
    if (r === undefined) return false;
    if (r.kind === 'all') return true;
    return r.kind === 'ip' && id === r.key;
  }

  primary(): boolean {
    const r = this.route;
    if (r === undefined) return false;
    if (r.kind === 'all') return true;
    return this.item !== undefined && isPrimaryRoute(this.item, r);
  }
}
