/**
 * CPU accounting for the Kafka bench, read from Linux's /proc like pidstat:
 * per process (user + system time of all its threads, so kafkajs' gzip and
 * ClickHouse's pools count too) and for the whole machine, so the result can
 * say which process was the bottleneck and how much CPU something else on
 * the machine took meanwhile. Elsewhere than Linux every reading is
 * undefined and the bench prints no CPU numbers.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds a process has used so far (all threads), or undefined if it is gone or /proc is absent. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Busy and total CPU seconds of the machine (all cores) since boot. */
export function machineCpuSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((s, x) => s + x, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    return { busy: (total - idle) / clockTicks(), total: total / clockTicks() };
  } catch {
    return undefined;
  }
}

/**
 * The process listening on a loopback TCP port (the broker, ClickHouse,
 * Redis), found through the socket's inode. Read-only; undefined when it
 * cannot be told (another user's process, no /proc).
 */
export function pidListeningOn(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const c = row.trim().split(/\s+/);
      if (c.length < 10 || c[3] !== '0A') continue; // LISTEN
      if (parseInt(c[1]!.split(':')[1]!, 16) === port) inodes.add(c[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return Number(pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/** CPU seconds of named processes between two readings. */
export class CpuMeter {
  private readonly start = new Map<string, number>();
  private machine0: { busy: number; total: number } | undefined;
  private wall0 = 0;

  constructor(private readonly pids: Record<string, number | undefined>) {}

  begin(): void {
    this.wall0 = performance.now();
    this.machine0 = machineCpuSeconds();
    for (const [name, pid] of Object.entries(this.pids)) {
      const s = pid === undefined ? undefined : processCpuSeconds(pid);
      if (s !== undefined) this.start.set(name, s);
    }
  }

  /**
   * Per process: CPU seconds and cores used on average since begin(); and the
   * machine's busy cores, of which `others` were not these processes.
   */
  end(): { seconds: number; processes: Record<string, { cpuSeconds: number; cores: number }>; machine?: { cores: number; busyCores: number; othersCores: number } } {
    const wall = (performance.now() - this.wall0) / 1000;
    const processes: Record<string, { cpuSeconds: number; cores: number }> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids)) {
      const s0 = this.start.get(name);
      const s1 = pid === undefined ? undefined : processCpuSeconds(pid);
      if (s0 === undefined || s1 === undefined) continue;
      const cpu = s1 - s0;
      ours += cpu;
      processes[name] = { cpuSeconds: round(cpu, 1), cores: round(cpu / wall, 2) };
    }
    const m1 = machineCpuSeconds();
    const out: ReturnType<CpuMeter['end']> = { seconds: round(wall, 1), processes };
    if (this.machine0 && m1) {
      const busy = (m1.busy - this.machine0.busy) / wall;
      out.machine = { cores: round((m1.total - this.machine0.total) / wall, 1), busyCores: round(busy, 2), othersCores: round(Math.max(0, busy - ours / wall), 2) };
    }
    return out;
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
