/** The Kafka path's ceiling on this machine, from two bench phases (see bench/kafka-floor.ts). */
import type { RunResult } from './spread.js';

/**
 * The most lines/s the Kafka path could reach here if it cost no more CPU
 * per line than the bare hops (kafka-floor) plus the in-process pipeline's
 * cheapest run, with every core busy. An upper bound: floodgate's event
 * rows, second topic and serialising cost more than either phase includes.
 */
export function kafkaCeiling(floor: RunResult | undefined, pipeline: RunResult | undefined, cores: number): Record<string, unknown> | undefined {
  const hops = (floor?.cpuMicrosPerLine as { total?: unknown } | undefined)?.total;
  const runs = (pipeline?.runs as { cpuMicrosPerLine?: number[] } | undefined)?.cpuMicrosPerLine ?? (typeof pipeline?.cpuMicrosPerLine === 'number' ? [pipeline.cpuMicrosPerLine] : []);
  if (typeof hops !== 'number' || !(hops > 0) || runs.length === 0 || !(cores > 0)) return undefined;
  const work = Math.min(...runs);
  const sum = Math.round((hops + work) * 100) / 100;
  return {
    cpuMicrosPerLine: { hops, pipeline: work, sum },
    cores,
    linesPerSec: Math.round((cores * 1e6) / (hops + work)),
    note: 'cores / (kafka-floor total + pipeline cheapest run): no run of the Kafka path can beat this on this machine unless those costs fall',
  };
}
