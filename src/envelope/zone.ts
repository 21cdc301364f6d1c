/**
 * Wall-clock time in an IANA zone → epoch ms. Syslog lines carry local time
 * without an offset; converting them right (including DST) needs the zone's
 * offset at that instant. Intl is slow, so the result is cached per hour.
 */

export class ZoneClock {
  readonly zone: string;
  private readonly utc: boolean;
  private readonly fmt: Intl.DateTimeFormat | undefined;
  private readonly hourCache = new Map<number, number>();

  constructor(zone: string) {
    this.zone = zone;
    this.utc = zone === 'UTC' || zone === 'Etc/UTC' || zone === 'GMT' || zone === 'Z';
    if (!this.utc) {
      // Throws RangeError for an unknown zone: callers turn that into a config error.
      this.fmt = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    }
  }

  /** Validate a zone name; returns an error message or undefined. */
  static check(zone: string): string | undefined {
    try {
      new ZoneClock(zone);
      return undefined;
    } catch {
      return `unknown time zone '${zone}' (use an IANA name such as Europe/Paris or UTC)`;
    }
  }

  /** Epoch ms of local `y-mo-d h:00:00` in this zone (mo is 1-based). */
  hourStart(y: number, mo: number, d: number, h: number): number {
    const guess = Date.UTC(y, mo - 1, d, h);
    if (this.utc) return guess;
    const key = ((y * 13 + mo) * 32 + d) * 24 + h;
    const hit = this.hourCache.get(key);
    if (hit !== undefined) return hit;
    let t = guess - this.offsetAt(guess);
    const off2 = this.offsetAt(t);
    if (guess - off2 !== t) t = guess - off2;
    if (this.hourCache.size > 100_000) this.hourCache.clear();
    this.hourCache.set(key, t);
    return t;
  }

  /** Zone offset (local − UTC) in ms at an instant. */
  private offsetAt(instant: number): number {
    const parts = this.fmt!.formatToParts(instant);
    let y = 0,
      mo = 0,
      d = 0,
      h = 0,
      mi = 0,
      s = 0;
    for (const p of parts) {
      switch (p.type) {
        case 'year': y = Number(p.value); break;
        case 'month': mo = Number(p.value); break;
        case 'day': d = Number(p.value); break;
        case 'hour': h = Number(p.value); break;
        case 'minute': mi = Number(p.value); break;
        case 'second': s = Number(p.value); break;
        default: break;
      }
    }
    const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
    return asUtc - (instant - (instant % 1000 + 1000) % 1000);
  }
}

/** The zone this process runs in (what an unqualified syslog time most likely means). */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
