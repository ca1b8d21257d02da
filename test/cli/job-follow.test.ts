/** `job watch` / `--wait` piped: one line per node change; a verify's drift is named on its node's line. */
import { expect } from 'chai';
import { nodeLine } from '../../cli/commands/job-follow';
import type { CommandReport__Output } from '../../generated/cluster/v1/CommandReport';

function report(changed: string[], probes: string[]): CommandReport__Output {
  return {
    mode: 'verify', bundle: { name: 'web', version: '1' }, ok: false, changed, units: [],
    probes: probes.map((id) => ({ id, ok: false, detail: `${id} failed` })), failure: null,
  };
}

describe('cli job follow: the line per node', () => {
  const rows: [string, Parameters<typeof nodeLine>[1], string][] = [
    ['no drift', { nodeId: 'n1', state: 'succeeded', error: '', drift: null }, 'job j1 node n1 succeeded'],
    ['a failure', { nodeId: 'n1', state: 'failed', error: 'unit conf failed', drift: null }, 'job j1 node n1 failed: unit conf failed'],
    ['drifted units', { nodeId: 'n2', state: 'succeeded', error: '', drift: report(['web-conf'], []) }, 'job j1 node n2 succeeded (drift: units web-conf)'],
    ['units and probes', { nodeId: 'n2', state: 'succeeded', error: '', drift: report(['a', 'b'], ['port']) }, 'job j1 node n2 succeeded (drift: units a, b; probes port)'],
    ['a drift report naming nothing', { nodeId: 'n2', state: 'succeeded', error: '', drift: report([], []) }, 'job j1 node n2 succeeded (drift)'],
  ];
  for (const [what, n, want] of rows) it(what, () => expect(nodeLine('j1', n)).to.equal(want));
});
