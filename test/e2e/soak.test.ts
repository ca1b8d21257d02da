/**
 * The 2-minute soak (bench/soak.ts, whose 30-minute run is the benchmark): a 3-member etcd,
 * two coordinators and agents at their DEFAULT settings, a busy process loading the box, etcd's
 * raft leader moved every 30 s and the leading coordinator SIGKILLed once. No agent is ever
 * stopped, so the node records must never say Unreachable. Behaviour only: no timing is asserted.
 */
import { expect } from 'chai';
import { runSoak } from '../../bench/soak';

describe('e2e: soak, no false Unreachable (2 minutes, default settings)', function () {
  this.timeout(480_000);

  it('etcd leader moves, a coordinator failover and CPU load: zero false Unreachable', async () => {
    const lines: string[] = [];
    const r = await runSoak({ minutes: 2, agents: 5, load: 1, etcdMoveEverySec: 30, failoverEverySec: 60, say: (l) => lines.push(l) });
    const context = lines.join('\n');
    console.log(`      etcd leader moves ${r.etcdLeaderMoves}, failovers ${r.coordinatorFailovers} (re-attach ${r.reattachMs.join(', ')} ms), unplanned leader changes ${r.unplannedLeaderChanges}, load ${r.loadavg1}`);
    expect(r.etcdLeaderMoves, context).to.be.at.least(2);
    expect(r.coordinatorFailovers, context).to.be.at.least(1);
    expect(r.falseUnreachable, context).to.deep.equal([]);
  });
});
