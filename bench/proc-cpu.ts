/**
 * CPU accounting for the Kafka bench, read from Linux's /proc like pidstat:
 * per process (user + system time of all its threads, so kafkajs' gzip and
 * ClickHouse's pools count too) and for the whole machine, so the result can
 * say which process was the bottleneck and how much CPU something else on
 * the machine took meanwhile. Elsewhere than Linux every reading is
 * undefined and the bench prints no CPU numbers.
 *
 * System time and minor page faults are read too: on this workplace's VMs a
 * page fault costs microseconds (the hypervisor takes part in each), and a
 * process that keeps returning memory to the kernel and touching fresh pages
 * shows it there, not in its own code (ClickHouse's allocator did: 1.5 M
 * faults and 40% of its CPU in the kernel for one throughput run).
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

export interface ProcessUsage {
  /** User + system CPU seconds (all threads). */
  cpuSeconds: number;
  /** Of which in the kernel. */
  systemSeconds: number;
  /** Minor page faults (a fresh or reclaimed page touched). */
  minorFaults: number;
}

/** What a process has used so far (all threads), or undefined if it is gone or /proc is absent. */
export function processUsage(pid: number): ProcessUsage | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces and parentheses: f[k] is field k + 3 of proc(5).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(f[11]) / clockTicks();
    const system = Number(f[12]) / clockTicks();
    return { cpuSeconds: user + system, systemSeconds: system, minorFaults: Number(f[7]) };
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
  private readonly start = new Map<string, ProcessUsage>();
  private machine0: { busy: number; total: number } | undefined;
  private wall0 = 0;

  constructor(private readonly pids: Record<string, number | undefined>) {}

  begin(): void {
    this.wall0 = performance.now();
    this.machine0 = machineCpuSeconds();
    for (const [name, pid] of Object.entries(this.pids)) {
      const s = pid === undefined ? undefined : processUsage(pid);
      if (s !== undefined) this.start.set(name, s);
    }
  }

  /**
   * Per process: CPU seconds and cores used on average since begin(), the
   * share of that CPU spent in the kernel, and minor page faults; and the
   * machine's busy cores, of which `others` were not these processes.
   */
  end(): { seconds: number; processes: Record<string, ProcessCpu>; machine?: { cores: number; busyCores: number; othersCores: number } } {
    const wall = (performance.now() - this.wall0) / 1000;
    const processes: Record<string, ProcessCpu> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids)) {
      const s0 = this.start.get(name);
      const s1 = pid === undefined ? undefined : processUsage(pid);
      if (s0 === undefined || s1 === undefined) continue;
      const cpu = s1.cpuSeconds - s0.cpuSeconds;
      ours += cpu;
      const system = s1.systemSeconds - s0.systemSeconds;
      processes[name] = { cpuSeconds: round(cpu, 1), cores: round(cpu / wall, 2), systemShare: cpu > 0 ? round(system / cpu, 2) : 0, minorFaults: s1.minorFaults - s0.minorFaults };
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

export interface ProcessCpu {
  cpuSeconds: number;
  cores: number;
  /** Share of cpuSeconds spent in the kernel. */
  systemShare: number;
  minorFaults: number;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
