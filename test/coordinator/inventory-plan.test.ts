/** planInventory and applyAction are pure: tables of (members, facts, nodes, streams) → actions. */
import { expect } from 'chai';
import { applyAction, planInventory, type InventoryAction } from '../../coordinator/inventory-reconciler';
import { newNodeRecord } from '../../coordinator/node-store';
import type { LifecycleState, MemberRecord, NodeRecord } from '../../shared';

const NOW = '2030-01-01T00:00:00.000Z';
const EARLIER = '2029-12-31T23:00:00.000Z';

function member(id: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return {
    nodeId: id, hostname: `${id}.lab`, agentVersion: '0.1.0', bootId: 'boot-1', instanceId: 'inst-1', address: '198.18.0.1',
    appliedDigest: '', registeredAt: EARLIER, ...over,
  };
}

function node(id: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    ...newNodeRecord(id, EARLIER), reachable: true, hostname: `${id}.lab`, agentVersion: '0.1.0', bootId: 'boot-1', address: '198.18.0.1',
    ...over,
  };
}

interface Row {
  name: string;
  members?: MemberRecord[];
  facts?: string[];
  nodes?: NodeRecord[];
  streams?: string[];
  /** Nodes whose stream signal fired, with since when. */
  streamDown?: [string, string][];
  want: (Pick<InventoryAction, 'kind' | 'nodeId'> & { fields?: string[]; signal?: string; since?: string })[];
}

const rows: Row[] = [
  { name: 'nothing anywhere', want: [] },
  { name: 'first contact → create', members: [member('n1')], want: [{ kind: 'create', nodeId: 'n1' }] },
  {
    name: 'first contact with facts already there → create then discover',
    members: [member('n1')], facts: ['n1'],
    want: [{ kind: 'create', nodeId: 'n1' }, { kind: 'discover', nodeId: 'n1' }],
  },
  { name: 'facts but no member and no node → nothing (first contact needs a member key)', facts: ['n1'], want: [] },
  { name: 'New + facts → discover', members: [member('n1')], facts: ['n1'], nodes: [node('n1')], want: [{ kind: 'discover', nodeId: 'n1' }] },
  { name: 'New without facts → nothing', members: [member('n1')], nodes: [node('n1')], want: [] },
  ...(['Discovered', 'Commissioning', 'Commissioned', 'Failed', 'Decommissioned'] as LifecycleState[]).map((state): Row => ({
    name: `${state} + facts → no lifecycle change`, members: [member('n1')], facts: ['n1'], nodes: [node('n1', { state })], want: [],
  })),
  {
    name: 'member gone, reachable → unreachable (state untouched)',
    nodes: [node('n1', { state: 'Commissioned' })], facts: ['n1'], want: [{ kind: 'unreachable', nodeId: 'n1' }],
  },
  { name: 'member gone, already unreachable → nothing', nodes: [node('n1', { reachable: false, unreachableSince: EARLIER })], want: [] },
  {
    name: 'member back → reachable',
    members: [member('n1')], nodes: [node('n1', { reachable: false, unreachableSince: EARLIER, state: 'Commissioned' })],
    want: [{ kind: 'reachable', nodeId: 'n1' }],
  },
  {
    name: 'member back to a New node with facts → reachable and discover',
    members: [member('n1')], facts: ['n1'], nodes: [node('n1', { reachable: false, unreachableSince: EARLIER })],
    want: [{ kind: 'reachable', nodeId: 'n1' }, { kind: 'discover', nodeId: 'n1' }],
  },
  {
    name: 'agent upgraded and rebooted → agent-changed with the fields',
    members: [member('n1', { agentVersion: '0.2.0', bootId: 'boot-2' })], nodes: [node('n1', { state: 'Discovered' })],
    want: [{ kind: 'agent-changed', nodeId: 'n1', fields: ['agentVersion', 'bootId'] }],
  },
  {
    name: 'empty member fields (old agent) are not a change',
    members: [member('n1', { hostname: '', address: '' })], nodes: [node('n1')], want: [],
  },
  {
    name: 'connected without a stream here (failover), re-attach grace over → unreachable (stream) and disconnected',
    members: [member('n1')], nodes: [node('n1', { connected: true, connectedAt: EARLIER })], streamDown: [['n1', EARLIER]],
    want: [{ kind: 'unreachable', nodeId: 'n1', signal: 'stream', since: EARLIER }, { kind: 'disconnected', nodeId: 'n1' }],
  },
  {
    name: 'connected without a stream here (failover), within the re-attach grace → nothing yet (its hello rewrites the record)',
    members: [member('n1')], nodes: [node('n1', { connected: true, connectedAt: EARLIER })], want: [],
  },
  {
    name: 'connected without a connectedAt (no stream signal for it) and no stream here → disconnected',
    members: [member('n1')], nodes: [node('n1', { connected: true })], want: [{ kind: 'disconnected', nodeId: 'n1' }],
  },
  {
    name: 'connected with a stream here → nothing',
    members: [member('n1')], nodes: [node('n1', { connected: true, connectedAt: EARLIER })], streams: ['n1'], want: [],
  },
  {
    name: 'stream gone past its grace, member there → unreachable by "stream", since the stream ended',
    members: [member('n1')], nodes: [node('n1', { connectedAt: EARLIER })], streamDown: [['n1', EARLIER]],
    want: [{ kind: 'unreachable', nodeId: 'n1', signal: 'stream', since: EARLIER }],
  },
  {
    name: 'stream and member gone → unreachable by "both"',
    nodes: [node('n1', { connectedAt: EARLIER })], streamDown: [['n1', EARLIER]],
    want: [{ kind: 'unreachable', nodeId: 'n1', signal: 'both', since: EARLIER }],
  },
  {
    name: 'unreachable by "stream", then the lease runs out too → "both", since kept',
    nodes: [node('n1', { connectedAt: EARLIER, reachable: false, unreachableSince: EARLIER, unreachableSignal: 'stream' })], streamDown: [['n1', NOW]],
    want: [{ kind: 'unreachable', nodeId: 'n1', signal: 'both', since: EARLIER }],
  },
  {
    name: 'unreachable by "stream", member there, stream back → reachable',
    members: [member('n1')], nodes: [node('n1', { connectedAt: EARLIER, reachable: false, unreachableSince: EARLIER, unreachableSignal: 'stream' })], streams: ['n1'],
    want: [{ kind: 'reachable', nodeId: 'n1' }],
  },
  {
    name: 'unreachable by "both", member back but no stream → "stream"',
    members: [member('n1')], nodes: [node('n1', { connectedAt: EARLIER, reachable: false, unreachableSince: EARLIER, unreachableSignal: 'both' })], streamDown: [['n1', EARLIER]],
    want: [{ kind: 'unreachable', nodeId: 'n1', signal: 'stream', since: EARLIER }],
  },
  {
    name: 'unreachable by "stream" already → nothing',
    members: [member('n1')], nodes: [node('n1', { connectedAt: EARLIER, reachable: false, unreachableSince: EARLIER, unreachableSignal: 'stream' })], streamDown: [['n1', EARLIER]],
    want: [],
  },
  {
    name: 'several nodes: sorted by id, each judged alone',
    members: [member('b'), member('c')], facts: ['c'], nodes: [node('a'), node('b')],
    want: [{ kind: 'unreachable', nodeId: 'a' }, { kind: 'create', nodeId: 'c' }, { kind: 'discover', nodeId: 'c' }],
  },
];

describe('planInventory (table)', () => {
  for (const row of rows) {
    it(row.name, () => {
      const actions = planInventory({
        members: new Map((row.members ?? []).map((m) => [m.nodeId, m])),
        factsPresent: new Set(row.facts ?? []),
        nodes: new Map((row.nodes ?? []).map((n) => [n.id, n])),
        streams: new Set(row.streams ?? []),
        streamDown: new Map(row.streamDown ?? []),
        now: NOW,
      });
      const got = actions.map((a) => {
        if (a.kind === 'agent-changed') return { kind: a.kind, nodeId: a.nodeId, fields: a.fields };
        // A lease-only row leaves signal and since implicit: "lease", now.
        if (a.kind === 'unreachable' && row.streamDown) return { kind: a.kind, nodeId: a.nodeId, signal: a.signal, since: a.since };
        return { kind: a.kind, nodeId: a.nodeId };
      });
      expect(got).to.deep.equal(row.want);
      if (!row.streamDown) for (const a of actions) if (a.kind === 'unreachable') expect([a.since, a.signal]).to.deep.equal([NOW, 'lease']);
    });
  }
});

describe('applyAction (table): re-decides on the current record', () => {
  const open = (): boolean => false;
  const cases: { name: string; action: InventoryAction; current: NodeRecord | undefined; check: (r: ReturnType<typeof applyAction>) => void }[] = [
    {
      name: 'create when absent: New, reachable, agent info copied, event node.created',
      action: { kind: 'create', nodeId: 'n1', member: member('n1') }, current: undefined,
      check: (r) => {
        expect(r?.next).to.include({ id: 'n1', state: 'New', reachable: true, agentVersion: '0.1.0', bootId: 'boot-1', hostname: 'n1.lab' });
        expect(r?.event.type).to.equal('node.created');
      },
    },
    { name: 'create when it exists already (hello won): nothing', action: { kind: 'create', nodeId: 'n1', member: member('n1') }, current: node('n1'), check: (r) => expect(r).to.equal(undefined) },
    {
      name: 'discover New → Discovered', action: { kind: 'discover', nodeId: 'n1' }, current: node('n1'),
      check: (r) => { expect(r?.next.state).to.equal('Discovered'); expect(r?.event.type).to.equal('node.discovered'); },
    },
    { name: 'discover when no longer New: nothing', action: { kind: 'discover', nodeId: 'n1' }, current: node('n1', { state: 'Discovered' }), check: (r) => expect(r).to.equal(undefined) },
    {
      name: 'unreachable keeps the lifecycle state and sets since and signal', action: { kind: 'unreachable', nodeId: 'n1', since: NOW, signal: 'lease' },
      current: node('n1', { state: 'Commissioned' }),
      check: (r) => {
        expect(r?.next).to.include({ state: 'Commissioned', reachable: false, unreachableSince: NOW, unreachableSignal: 'lease' });
        expect(r?.event.type).to.equal('node.unreachable');
      },
    },
    {
      name: 'unreachable by "stream" when the stream came back meanwhile: nothing', action: { kind: 'unreachable', nodeId: 'n1', since: NOW, signal: 'stream' },
      current: node('n1'),
      check: () => expect(applyAction({ kind: 'unreachable', nodeId: 'n1', since: NOW, signal: 'stream' }, node('n1'), NOW, () => true)).to.equal(undefined),
    },
    {
      name: 'signal changes while unreachable: since kept', action: { kind: 'unreachable', nodeId: 'n1', since: NOW, signal: 'both' },
      current: node('n1', { reachable: false, unreachableSince: EARLIER, unreachableSignal: 'stream' }),
      check: (r) => expect(r?.next).to.include({ reachable: false, unreachableSince: EARLIER, unreachableSignal: 'both' }),
    },
    {
      name: 'reachable clears since and keeps the state', action: { kind: 'reachable', nodeId: 'n1', member: member('n1', { bootId: 'boot-9' }) },
      current: node('n1', { state: 'Failed', reachable: false, unreachableSince: EARLIER }),
      check: (r) => {
        expect(r?.next).to.include({ state: 'Failed', reachable: true, bootId: 'boot-9' });
        expect(r?.next).to.not.have.property('unreachableSince');
        expect(r?.next).to.not.have.property('unreachableSignal');
        expect(r?.event.type).to.equal('node.reachable');
      },
    },
    {
      name: 'disconnected clears the flag, but not while a stream is open', action: { kind: 'disconnected', nodeId: 'n1' },
      current: node('n1', { connected: true }),
      check: (r) => {
        expect(r?.next.connected).to.equal(false);
        expect(applyAction({ kind: 'disconnected', nodeId: 'n1' }, node('n1', { connected: true }), NOW, () => true)).to.equal(undefined);
      },
    },
  ];
  for (const c of cases) it(c.name, () => c.check(applyAction(c.action, c.current, NOW, open)));
});
