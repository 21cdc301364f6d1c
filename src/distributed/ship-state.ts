/**
 * Where `floodgate ship` stands in each input: the follower position after
 * the last batch Kafka acknowledged, and a generation that changes whenever
 * the file at that path was truncated in place (copytruncate), so offsets
 * that start over at 0 are never mistaken for lines already shipped.
 * Written atomically (temp file + rename): a crash leaves the old or the new
 * state, never a torn one.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { FollowPosition } from '../input/follower.js';
import { FloodgateError } from '../core/errors.js';

const positionSchema = z.object({
  dev: z.number(),
  ino: z.number(),
  offset: z.number().int().nonnegative(),
  size: z.number().optional(),
  head: z.string().optional(),
});

const stateSchema = z.object({
  v: z.literal(1),
  inputs: z.record(z.string(), z.object({ position: positionSchema, generation: z.number().int().nonnegative() })),
});

export type ShipState = z.infer<typeof stateSchema>;

export function loadShipState(path: string): ShipState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { v: 1, inputs: {} };
    throw new FloodgateError('FG_INPUT_UNREADABLE', `cannot read ship state ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new FloodgateError('FG_CONFIG_INVALID', `ship state ${path} is not JSON; move it away to start over (inputs are then shipped from their beginning)`);
  }
  const r = stateSchema.safeParse(doc);
  if (!r.success) throw new FloodgateError('FG_CONFIG_INVALID', `ship state ${path} has an unexpected shape; move it away to start over`);
  return r.data;
}

export function saveShipState(path: string, state: ShipState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, path);
}

export function positionOf(p: FollowPosition): FollowPosition {
  return { dev: p.dev, ino: p.ino, offset: p.offset, ...(p.size !== undefined ? { size: p.size } : {}), ...(p.head !== undefined ? { head: p.head } : {}) };
}
