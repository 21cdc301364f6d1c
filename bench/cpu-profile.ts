/**
 * Where a process's main thread spent its time, from the .cpuprofile that
 * `node --cpu-prof` writes at exit: self time per function and per area of
 * the code (ours by folder, each dependency, Node internals, GC, idle), so
 * the bench can print it next to the numbers it explains.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  seconds: number;
  /** Share of sampled time (%) per area, largest first. */
  areas: Record<string, number>;
  /** The functions with the most self time: `name (file:line)` → %. */
  top: Record<string, number>;
}

/** `src/distributed`, `detectors`, `kafkajs`, `node:zlib`, `(garbage collector)`, ... */
function areaOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url.split('/')[0]!;
  const ours = /\/dist\/((?:src\/)?[^/]+)\//.exec(url);
  if (ours) return ours[1]!;
  return url.replace(/^.*\//, '');
}

export function summarizeProfile(path: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} (${url.replace(/^.*\/(node_modules\/)?/, '')}:${lineNumber + 1})`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, total)) / 10;
  const sorted = (m: Map<string, number>, n: number) => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => [k, pct(v)]));
  return { seconds: Math.round(total / 1e5) / 10, areas: sorted(areas, 12), top: sorted(fns, topN) };
}
