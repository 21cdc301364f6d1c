import { describe, expect, it } from 'vitest';
import { CpuMeter, processUsage } from '../bench/proc-cpu.js';

const linux = process.platform === 'linux';

describe('bench process accounting', () => {
  it.runIf(linux)('counts the page faults of touching fresh memory, and the CPU of work done', () => {
    const meter = new CpuMeter({ self: process.pid });
    meter.begin();
    const before = processUsage(process.pid)!;
    // 64 MiB written page by page: fresh pages, each faulted in (transparent
    // huge pages are opt-in here, and even with them some faults remain).
    const buf = Buffer.allocUnsafeSlow(64 << 20);
    for (let i = 0; i < buf.length; i += 4096) buf[i] = 1;
    let x = 0;
    const until = performance.now() + 150;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    const after = processUsage(process.pid)!;
    expect(after.minorFaults).toBeGreaterThan(before.minorFaults);
    expect(after.cpuSeconds).toBeGreaterThan(before.cpuSeconds);
    expect(after.systemSeconds).toBeLessThanOrEqual(after.cpuSeconds);
    const self = meter.end().processes.self!;
    expect(self.minorFaults).toBeGreaterThan(0);
    expect(self.cpuSeconds).toBeGreaterThan(0);
    expect(self.systemShare).toBeGreaterThanOrEqual(0);
    expect(self.systemShare).toBeLessThanOrEqual(1);
    expect(x).toBeGreaterThan(0);
  });

  it('reads nothing for a process that does not exist', () => {
    expect(processUsage(2 ** 22 + 12345)).toBeUndefined();
  });
});
