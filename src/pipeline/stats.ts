/** Counters for one parse run; the `summary` line of `floodgate parse` is built from these. */
export interface ParseStats {
  lines: number;
  events: number;
  messages: number;
  /** Lines of a claimed program that its parser did not recognise. */
  unknown: number;
  /** Lines without a recognisable envelope (garbage, binary, truncated). */
  malformed: number;
  /** Lines longer than the configured maximum (cut, then parsed or counted malformed). */
  oversized: number;
  /** Lines whose program no parser claims. */
  unclaimed: number;
  /** Parser exceptions caught (bugs; each line still counted as unknown). */
  parserErrors: number;
  unknownByProgram: Record<string, number>;
  unclaimedByProgram: Record<string, number>;
}

export function emptyStats(): ParseStats {
  return {
    lines: 0,
    events: 0,
    messages: 0,
    unknown: 0,
    malformed: 0,
    oversized: 0,
    unclaimed: 0,
    parserErrors: 0,
    unknownByProgram: Object.create(null) as Record<string, number>,
    unclaimedByProgram: Object.create(null) as Record<string, number>,
  };
}

/** Count into a per-program map without letting hostile input grow it without bound. */
export function bump(map: Record<string, number>, key: string, cap = 1000): void {
  const cur = map[key];
  if (cur !== undefined) map[key] = cur + 1;
  else if (Object.keys(map).length < cap) map[key] = 1;
  else map['(other)'] = (map['(other)'] ?? 0) + 1;
}
