/**
 * An idle agent sleeps: with nothing to do (the coordinator's 1 s HTTP/2 keepalive pings, its
 * stream pings every 10 s, lease renewals every TTL/3, the hardware check every 30 s, one
 * event-loop-lag sample a second) its main thread should wake about three times a second.
 * Counted, not timed: the voluntary context switches of the main thread (/proc/<pid>/status),
 * each one a return from epoll_wait. A 10 ms timer (prom-client's default event-loop-lag
 * sampling) made it ~100 per second, most of the idle agent's CPU; at 200 ms it was ~7.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { delay, EtcdServer, TestCluster } from '../helpers';

function voluntarySwitches(pid: number): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no voluntary_ctxt_switches for ${pid}`);
  return Number(m[1]);
}

describe('agent at idle: how often it wakes', function () {
  this.timeout(120_000);
  let etcd: EtcdServer;
  let cluster: TestCluster;
  before(async () => {
    etcd = await EtcdServer.start('idle-wakeups');
    cluster = new TestCluster(etcd, { name: 'idle-wakeups', leaseTtlSec: 45 });
    await cluster.startCoordinator();
  });
  after(async () => {
    await cluster?.destroy();
    await etcd?.destroy();
  });

  it('an attached, idle agent wakes its main thread fewer than 5 times a second', async () => {
    const agent = await cluster.startAgent('idle-1');
    await agent.proc.waitForLog(/"msg":"connected to coordinator"/, 60_000);
    // Start-up work (facts, the first hardware check) is over well within this.
    await delay(5000);
    const pid = agent.proc.proc.pid as number;
    const before = voluntarySwitches(pid);
    const windowMs = 10_000;
    await delay(windowMs);
    const perSecond = (voluntarySwitches(pid) - before) / (windowMs / 1000);
    expect(perSecond, `${perSecond} wake-ups per second`).to.be.below(5);
  });
});
