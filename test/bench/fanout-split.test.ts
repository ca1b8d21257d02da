import { expect } from 'chai';
import { jobSplit } from '../../bench/fanout';

describe('bench/fanout jobSplit: the job phase CPU split into the idle fleet and the job', () => {
  const cpu = { wallMs: 20_000, cpuMs: { coordinator: 10_000, simFleet: 16_000, etcd: 3_000, bench: 500 } };

  it('charges each process its idle rate for the job wall and leaves the rest as work', () => {
    const s = jobSplit(cpu, { coordinator: 10, simFleet: 30, etcd: 20 }, 2);
    // etcd used less than its idle rate would say: its background is what it used, its work 0.
    expect(s.backgroundCpuMs).to.deep.equal({ coordinator: 2_000, simFleet: 6_000, etcd: 3_000 });
    expect(s.workCpuMs).to.deep.equal({ coordinator: 8_000, simFleet: 10_000, etcd: 0, bench: 500 });
    expect(s.workOnCoresWallMs).to.equal(9_250);
    // The parts add up to what each process used.
    for (const k of ['coordinator', 'simFleet', 'etcd'] as const) expect(s.backgroundCpuMs[k] + s.workCpuMs[k]).to.equal(cpu.cpuMs[k]);
  });

  it('divides the work over the cores the box has', () => {
    const none = { coordinator: 0, simFleet: 0, etcd: 0 };
    expect(jobSplit(cpu, none, 1).workOnCoresWallMs).to.equal(29_500);
    expect(jobSplit(cpu, none, 4).workOnCoresWallMs).to.equal(7_375);
  });
});
