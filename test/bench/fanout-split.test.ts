import { expect } from 'chai';
import { jobSplit } from '../../bench/fanout';

describe('bench/fanout jobSplit: the job phase CPU split into the idle fleet and the job', () => {
  const cpu = { wallMs: 20_000, cpuMs: { coordinator: 10_000, simFleet: 16_000, etcd: 3_000, bench: 500 } };

  it('charges each process its idle rate for the job wall and leaves the rest as work', () => {
    const s = jobSplit(cpu, { coordinator: 10, simFleet: 30, etcd: 20 }, 2);
    expect(s.backgroundCpuMs).to.deep.equal({ coordinator: 2_000, simFleet: 6_000, etcd: 4_000 });
    // etcd spent less than its idle rate: no negative work.
    expect(s.workCpuMs).to.deep.equal({ coordinator: 8_000, simFleet: 10_000, etcd: 0, bench: 500 });
    expect(s.workWallMsOnCores).to.equal(9_250);
  });

  it('divides the work over the cores the box has', () => {
    const none = { coordinator: 0, simFleet: 0, etcd: 0 };
    expect(jobSplit(cpu, none, 1).workWallMsOnCores).to.equal(29_500);
    expect(jobSplit(cpu, none, 4).workWallMsOnCores).to.equal(7_375);
  });
});
