/**
 * memberPutMatters is pure: which rewrites of members/<id> make the inventory reconciler pass
 * (a table of previous value → new value).
 */
import { expect } from 'chai';
import { memberPutMatters } from '../../coordinator/inventory-reconciler';

const BASE = {
  nodeId: 'n1', hostname: 'n1.lab', agentVersion: '0.1.0', bootId: 'boot-1', instanceId: 'inst-1', address: '198.18.0.1',
  appliedDigest: 'a', registeredAt: '2030-01-01T00:00:00.000Z',
};
const json = (over: Record<string, unknown> = {}): string => JSON.stringify({ ...BASE, ...over });

const rows: { name: string; previous: string | undefined; value: string; matters: boolean }[] = [
  { name: 'created (no previous value)', previous: undefined, value: json(), matters: true },
  { name: 'rewritten unchanged', previous: json(), value: json(), matters: false },
  { name: 'only the applied digest moved (after a command)', previous: json(), value: json({ appliedDigest: 'b' }), matters: false },
  { name: 'applied digest appears', previous: JSON.stringify({ ...BASE, appliedDigest: undefined }), value: json(), matters: false },
  { name: 'new boot id (a reboot)', previous: json(), value: json({ bootId: 'boot-2', appliedDigest: 'b' }), matters: true },
  { name: 'new agent version', previous: json(), value: json({ agentVersion: '0.2.0' }), matters: true },
  { name: 'new address', previous: json(), value: json({ address: '198.18.0.2' }), matters: true },
  { name: 'new hostname', previous: json(), value: json({ hostname: 'other.lab' }), matters: true },
  { name: 'new instance (agent restarted)', previous: json(), value: json({ instanceId: 'inst-2' }), matters: true },
  { name: 'registered again', previous: json(), value: json({ registeredAt: '2030-01-02T00:00:00.000Z' }), matters: true },
  { name: 'a field added', previous: json(), value: json({ extra: 1 }), matters: true },
  { name: 'new value unreadable', previous: json(), value: '{not json', matters: true },
  { name: 'previous value unreadable', previous: '{not json', value: json(), matters: true },
  { name: 'new value not an object', previous: json(), value: 'null', matters: true },
];

describe('inventory: which member rewrites make a pass (memberPutMatters)', () => {
  for (const r of rows) {
    it(r.name, () => {
      expect(memberPutMatters(r.value, r.previous)).to.equal(r.matters);
    });
  }
});
