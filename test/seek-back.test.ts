import { describe, expect, it } from 'vitest';
import { seekBack, STALE_BATCHES, type SeekState } from '../src/distributed/seek-back.js';

describe('seekBack (a partition whose fetch began past its state)', () => {
  const state = (next: bigint): SeekState => ({ next, seekTo: undefined, staleBatches: 0 });

  it('processes a batch that begins within the state, without seeking', () => {
    const seeks: bigint[] = [];
    const ps = state(10n);
    expect(seekBack(ps, 10n, (o) => seeks.push(o))).toBe('in-step');
    expect(seekBack(ps, 4n, (o) => seeks.push(o))).toBe('in-step'); // older records: the stage skips them itself
    expect(seeks).toEqual([]);
  });

  it('seeks back once, drops the batches fetched before the seek takes effect, then goes on in step', () => {
    const seeks: bigint[] = [];
    const ps = state(10n);
    expect(seekBack(ps, 25n, (o) => seeks.push(o))).toBe('seeking');
    expect(seekBack(ps, 27n, (o) => seeks.push(o))).toBe('seeking');
    expect(seeks).toEqual([10n]); // one seek, not one per batch
    expect(seekBack(ps, 10n, (o) => seeks.push(o))).toBe('in-step');
    expect(ps.seekTo).toBeUndefined();
    // a later jump past the state seeks again
    ps.next = 40n;
    expect(seekBack(ps, 55n, (o) => seeks.push(o))).toBe('seeking');
    expect(seeks).toEqual([10n, 40n]);
  });

  it('concludes the records are gone after a few batches that still begin past the state', () => {
    const seeks: bigint[] = [];
    const ps = state(10n);
    expect(seekBack(ps, 100n, (o) => seeks.push(o))).toBe('seeking');
    for (let i = 0; i < STALE_BATCHES; i++) expect(seekBack(ps, 100n, (o) => seeks.push(o))).toBe('seeking');
    expect(seekBack(ps, 100n, (o) => seeks.push(o))).toBe('gap');
    expect(seeks).toEqual([10n]);
    expect(ps.seekTo).toBeUndefined();
  });
});
