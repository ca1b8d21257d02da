/**
 * The flaky `agent reload` test ("bootId expected boot-2, found boot-1") was this race: an
 * agent is killed and restarted with a new boot id; the new agent's hello records boot-2, but
 * the killed agent's member key (its lease not yet expired) still says boot-1 until the new
 * agent's own member put lands, and an inventory pass in between copied boot-1 back onto the
 * node. A member record of another agent instance than the one whose stream is open is stale.
 */
import { expect } from 'chai';
import { applyAction } from '../../coordinator/inventory-reconciler';
import { newNodeRecord } from '../../coordinator/node-store';
import type { MemberRecord, NodeRecord } from '../../shared';

const NOW = '2030-01-01T00:00:00.000Z';
const EARLIER = '2029-12-31T23:00:00.000Z';

const oldMember: MemberRecord = {
  nodeId: 'n1', hostname: 'n1.lab', agentVersion: '0.1.0', bootId: 'boot-1', instanceId: 'inst-old', address: '198.18.0.1',
  appliedDigest: '', registeredAt: EARLIER,
};
/** The node as the new agent's hello left it. */
const afterHello: NodeRecord = {
  ...newNodeRecord('n1', EARLIER), reachable: true, connected: true, hostname: 'n1.lab', agentVersion: '0.1.0', address: '198.18.0.1',
  bootId: 'boot-2', instanceId: 'inst-new',
};

describe('applyAction: a member record of a previous agent instance does not overwrite the live agent\'s hello', () => {
  const streamOpen = (): boolean => true;
  const noStream = (): boolean => false;

  it('agent-changed from the old instance while the new one\'s stream is open: nothing', () => {
    expect(applyAction({ kind: 'agent-changed', nodeId: 'n1', member: oldMember, fields: ['bootId'] }, afterHello, NOW, streamOpen)).to.equal(undefined);
  });

  it('reachable from the old instance while the new one\'s stream is open: reachable, boot id and instance kept', () => {
    const r = applyAction({ kind: 'reachable', nodeId: 'n1', member: oldMember }, { ...afterHello, reachable: false, unreachableSince: EARLIER }, NOW, streamOpen);
    expect(r?.next).to.include({ reachable: true, bootId: 'boot-2', instanceId: 'inst-new' });
  });

  it('the same instance\'s member record still updates the node', () => {
    const r = applyAction({ kind: 'agent-changed', nodeId: 'n1', member: { ...oldMember, instanceId: 'inst-new', bootId: 'boot-3' }, fields: ['bootId'] }, afterHello, NOW, streamOpen);
    expect(r?.next.bootId).to.equal('boot-3');
  });

  it('with no stream open here the member record is all there is: it updates the node', () => {
    const r = applyAction({ kind: 'agent-changed', nodeId: 'n1', member: oldMember, fields: ['bootId'] }, afterHello, NOW, noStream);
    expect(r?.next.bootId).to.equal('boot-1');
  });
});
