/**
 * Every loop gathers a burst of triggers with the one DEFAULT_DEBOUNCE_MS (the copies had
 * drifted to 100, 200, 500 ms and none), except the sweeper, which states why it waits 500 ms.
 */
import { expect } from 'chai';
import { waitFor } from '../helpers';
import { AutoCommissioner } from '../../coordinator/reconcile/auto-commission';
import { DriftWatcher } from '../../coordinator/reconcile/drift-watcher';
import { StuckNodeSweeper } from '../../coordinator/reconcile/stuck-node-sweeper';
import { VerifyScheduler } from '../../coordinator/reconcile/verify-scheduler';
import { InventoryReconciler } from '../../coordinator/inventory-reconciler';
import { AgentStreams } from '../../coordinator/agent-streams';
import { DEFAULT_DEBOUNCE_MS, ManualClock } from '../../shared';
import { logger, useHarness, type Harness } from './harness';

interface Loop {
  start(): void;
  stop(): Promise<void>;
  schedule(): void;
  readonly passes: number;
  /** Only where the loop has no leadership check to count passes by (the verify scheduler). */
  readonly busy?: boolean;
}

const LOOPS: { name: string; debounceMs: number; make: (h: Harness, clock: ManualClock, isLeader: () => boolean) => Loop }[] = [
  {
    name: 'auto-commission', debounceMs: DEFAULT_DEBOUNCE_MS,
    make: (h, clock, isLeader) => new AutoCommissioner({ client: h.client, keyspace: h.ks, startJob: (r) => h.starter.start(r), isLeader, clock, logger }),
  },
  {
    name: 'drift watcher', debounceMs: DEFAULT_DEBOUNCE_MS,
    make: (h, clock, isLeader) => new DriftWatcher({ client: h.client, keyspace: h.ks, nodes: h.nodes, startJob: (r) => h.starter.start(r), isLeader, clock, logger }),
  },
  {
    name: 'verify scheduler', debounceMs: DEFAULT_DEBOUNCE_MS,
    make: (h, clock, isLeader) => new VerifyScheduler({ client: h.client, keyspace: h.ks, startJob: (r) => h.starter.start(r), isLeader, clock, logger }),
  },
  {
    name: 'inventory reconciler', debounceMs: DEFAULT_DEBOUNCE_MS,
    make: (h, clock, isLeader) => new InventoryReconciler({
      client: h.client, keyspace: h.ks, nodes: h.nodes, streams: new AgentStreams(clock), streamGraceMs: 1_500, reattachGraceMs: 10_000, isLeader, clock, logger,
    }),
  },
  {
    name: 'stuck-node sweeper', debounceMs: 500,
    make: (h, clock, isLeader) => new StuckNodeSweeper({ client: h.client, keyspace: h.ks, nodes: h.nodes, isLeader, clock, logger }),
  },
];

describe('reconcile loops: one debounce (real etcd, ManualClock)', function () {
  this.timeout(60_000);
  const suite = useHarness('debounce');

  for (const { name, debounceMs, make } of LOOPS) {
    it(`${name}: a burst of triggers makes one pass, ${debounceMs} ms after the first`, async () => {
      const h = suite.h;
      const clock = new ManualClock();
      // A pass starts with the leadership check (or, in the verify scheduler, which has none,
      // shows as busy until it ends): counting the checks counts passes started.
      let checks = 0;
      const loop = h.adopt(make(h, clock, () => { checks++; return h.isLeader(); }));
      const started = (): number => (loop.busy === undefined ? checks : loop.passes + (loop.busy ? 1 : 0));
      loop.start();
      // Quiet first: the start pass and the one the watches' first connection asks for.
      let last = -1;
      await waitFor('the loop to be quiet', async () => {
        await clock.advance(1000);
        const quiet = loop.passes > 0 && started() === last;
        last = started();
        return quiet;
      }, { intervalMs: 100 });
      const before = started();
      const passesBefore = loop.passes;
      loop.schedule();
      await clock.advance(debounceMs / 2);
      loop.schedule();
      await clock.advance(debounceMs / 2 - 1);
      expect(started(), 'before the debounce').to.equal(before);
      await clock.advance(1);
      expect(started(), 'at the debounce').to.equal(before + 1);
      await waitFor('the pass to end', () => loop.passes === passesBefore + 1);
      await clock.advance(10 * debounceMs);
      expect(started(), 'the burst made one pass').to.equal(before + 1);
    });
  }
});
