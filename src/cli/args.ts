/** Small shared helpers for the subcommands' argument handling. */
import { FloodgateError } from '../core/errors.js';
import { envelopeFormats, type EnvelopeFormat } from '../envelope/envelope.js';
import { ZoneClock, localZone } from '../envelope/zone.js';

export function usageError(msg: string): FloodgateError {
  return new FloodgateError('FG_USAGE', msg);
}

export function formatArg(v: string | undefined): EnvelopeFormat {
  if (v === undefined) return 'auto';
  if (!(envelopeFormats as readonly string[]).includes(v)) throw usageError(`--format must be one of ${envelopeFormats.join(', ')} (got '${v}')`);
  return v as EnvelopeFormat;
}

export function zoneArg(v: string | undefined): ZoneClock {
  const zone = v ?? process.env.TZ ?? localZone();
  const err = ZoneClock.check(zone);
  if (err) throw usageError(`--tz: ${err}`);
  return new ZoneClock(zone);
}

export function yearArg(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{4}$/.test(v)) throw usageError(`--year must be a four-digit year (got '${v}')`);
  return Number(v);
}

export function intArg(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw usageError(`--${name} must be a whole number from ${min} to ${max} (got '${v}')`);
  return n;
}
