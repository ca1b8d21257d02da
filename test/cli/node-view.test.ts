import { expect } from 'chai';
import type { Node__Output } from '../../generated/cluster/v1/Node';
import type { NodeEvent__Output } from '../../generated/cluster/v1/NodeEvent';
import { loadProto } from '../../shared/proto';
import { formatTable } from '../../cli/output';
import { describeNode, formatLabels, NODE_COLUMNS, nodeObject, nodeRow, nodeWideRow, NODE_WIDE_COLUMNS } from '../../cli/node-view';
import { NodeWatchPrinter } from '../../cli/node-watch-printer';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');

function node(over: Partial<Node__Output> = {}): Node__Output {
  return {
    id: 'node-1', state: 'Discovered', reachable: true, unreachableSince: '', unreachableSignal: '', labels: { role: 'worker', rack: 'r1' }, group: '',
    maintenance: false, agentVersion: '0.1.0', bootId: 'b-1', address: '127.0.0.1:0',
    facts: {
      manufacturer: 'Dell Inc.', model: 'PowerEdge R640', serial: 'SN123', systemUuid: 'uuid-1', cpuModel: 'Xeon Gold 6130',
      cpuCores: 16, cpuThreads: 32, memoryBytes: String(192 * 1024 ** 3), diskCount: 2, diskBytes: String(2 * 960 * 1000 ** 3),
      os: 'Rocky Linux 9.3', kernel: '5.14.0', primaryMac: 'aa:bb:cc:dd:ee:01', primaryIp: '10.0.0.11', gpuCount: 0, hostname: 'node-1.lab',
    },
    createdAt: '2026-03-01T11:55:00.000Z', updatedAt: '2026-03-01T11:59:00.000Z', lastSeenAt: '2026-03-01T11:59:30.000Z',
    lastError: '', desiredConfig: '', appliedConfig: '', appliedDigest: '', currentJob: '', revision: '42',
    connectedAt: '2026-03-01T11:55:01.000Z', connected: true, stateChangedAt: '2026-03-01T11:55:02.000Z', maintenanceReason: '', driftSummary: '',
    outOfDate: false, outOfDateReasons: [], appliedVariables: {}, appliedExtraVars: [], preRegisteredBy: '', preRegistrations: [],
    ...over,
  };
}

function camel(s: string): string {
  return s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Field names of a proto message, in declaration order, as the CLI must print them. */
function protoFields(message: string): string[] {
  const def = loadProto().packageDefinition[`cluster.v1.${message}`] as unknown as { type: { field: { name: string; number: number }[] } };
  return def.type.field.slice().sort((a, b) => a.number - b.number).map((f) => camel(f.name));
}

describe('cli/node-view', () => {
  it('the JSON object has exactly the proto Node fields, camelCase, in proto order', () => {
    expect(Object.keys(nodeObject(node()))).to.deep.equal(protoFields('Node'));
    expect(Object.keys(nodeObject(node()).facts)).to.deep.equal(protoFields('FactsSummary'));
  });

  it('the JSON object carries state, reachable (boolean) and facts; labels sorted', () => {
    const o = nodeObject(node({ reachable: false }));
    expect(o).to.include({ id: 'node-1', state: 'Discovered', reachable: false });
    expect(o.facts).to.include({ hostname: 'node-1.lab', cpuCores: 16, memoryBytes: 192 * 1024 ** 3, diskBytes: 2 * 960 * 1000 ** 3 });
    expect(JSON.stringify(o.labels)).to.equal('{"rack":"r1","role":"worker"}');
  });

  it('a node without facts yet still prints (empty summary, dashes in tables)', () => {
    const n = node({ facts: null, state: 'New' });
    expect(nodeObject(n).facts).to.include({ hostname: '', cpuCores: 0, memoryBytes: 0 });
    expect(nodeRow(n, NOW).map((c) => (typeof c === 'string' ? c : c.text))).to.deep.equal(
      ['node-1', 'New', 'yes', '-', '-', '-', '-', '-', '-', '5m'],
    );
  });

  describe('table rows', () => {
    const cases: [string, Partial<Node__Output>, string[]][] = [
      ['discovered', {}, ['node-1', 'Discovered', 'yes', '-', '-', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '5m']],
      ['unreachable, in a group', { reachable: false, group: 'worker' }, ['node-1', 'Discovered', 'no', 'worker', '-', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '5m']],
      ['maintenance is shown with the state', { state: 'Commissioned', maintenance: true }, ['node-1', 'Commissioned,Maintenance', 'yes', '-', '-', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '5m']],
      ['old node', { createdAt: '2026-02-20T12:00:00.000Z' }, ['node-1', 'Discovered', 'yes', '-', '-', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '9d']],
      ['up to date', { state: 'Commissioned', group: 'web', appliedConfig: 'web@2' }, ['node-1', 'Commissioned', 'yes', 'web', 'web@2', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '5m']],
      ['out of date: a star on the applied version', { state: 'Commissioned', group: 'web', appliedConfig: 'web@2', outOfDate: true, outOfDateReasons: ['vars.listen "7777" → "8080"'] },
        ['node-1', 'Commissioned', 'yes', 'web', 'web@2*', 'node-1.lab', '10.0.0.11', '32', '192 GiB', '5m']],
    ];
    for (const [name, over, want] of cases) {
      it(name, () => {
        const row = nodeRow(node(over), NOW);
        expect(row.map((c) => (typeof c === 'string' ? c : c.text))).to.deep.equal(want);
        expect(row).to.have.length(NODE_COLUMNS.length);
      });
    }

    it('wide adds model, serial, OS, kernel, agent, disks and labels', () => {
      const row = nodeWideRow(node(), NOW).map((c) => (typeof c === 'string' ? c : c.text));
      expect(row).to.have.length(NODE_WIDE_COLUMNS.length);
      expect(row.slice(NODE_COLUMNS.length)).to.deep.equal(
        ['Dell Inc. PowerEdge R640', 'SN123', 'Rocky Linux 9.3', '5.14.0', '0.1.0', '2/1.7 TiB', 'rack=r1,role=worker'],
      );
    });

    it('a full table is aligned', () => {
      const text = formatTable(NODE_COLUMNS, [nodeRow(node(), NOW), nodeRow(node({ id: 'node-10', reachable: false }), NOW)]);
      expect(text.split('\n')[0]).to.equal('ID        STATE        REACHABLE   GROUP   CONFIG   HOSTNAME     IP          CPU   MEMORY    AGE');
      expect(text.split('\n')[2]).to.equal('node-10   Discovered   no          -       -        node-1.lab   10.0.0.11   32    192 GiB   5m');
    });
  });

  it('formatLabels', () => {
    expect(formatLabels({})).to.equal('<none>');
    expect(formatLabels(undefined)).to.equal('<none>');
    expect(formatLabels({ z: '1', a: '2' })).to.equal('a=2,z=1');
  });

  describe('describe page', () => {
    it('shows the record with ages, then the full facts as YAML', () => {
      const facts = JSON.stringify({ hostname: 'node-1.lab', cpu: { brand: 'Xeon Gold 6130', cores: 32 }, disks: [{ device: '/dev/sda' }] });
      const text = describeNode(node({ unreachableSince: '', lastError: 'boom' }), facts, NOW);
      const lines = text.split('\n');
      expect(lines[0]).to.equal('ID:             node-1');
      expect(text).to.include('State:          Discovered, since 2026-03-01T11:55:02.000Z (4m58s ago)\n');
      expect(text).to.include('Reachable:      yes\n');
      expect(text).to.include('Labels:         rack=r1,role=worker\n');
      expect(text).to.include('Last error:     boom\n');
      expect(text).to.include('CPU:            Xeon Gold 6130 (16 cores, 32 threads)\n');
      expect(text).to.include('Memory:         192 GiB\n');
      expect(text).to.include('\nFacts:\n  hostname: node-1.lab\n  cpu:\n    brand: Xeon Gold 6130\n    cores: 32\n  disks:\n    - device: /dev/sda\n');
    });

    it('a connected node is seen now (the record\'s lastSeenAt is its connect time); a disconnected one shows lastSeenAt', () => {
      expect(describeNode(node(), '', NOW)).to.include('Last seen:      now (connected)\n');
      expect(describeNode(node({ connected: false }), '', NOW)).to.include('Last seen:      2026-03-01T11:59:30.000Z (30s ago)\n');
    });

    it('shows the maintenance reason', () => {
      expect(describeNode(node({ maintenance: true, maintenanceReason: 'disk swap, ticket 4711' }), '', NOW)).to.include('Maintenance:    yes: disk swap, ticket 4711\n');
      expect(describeNode(node({ maintenance: true }), '', NOW)).to.include('Maintenance:    yes\n');
    });

    it('says when facts are not reported yet, and since when a node is unreachable', () => {
      const text = describeNode(node({ reachable: false, unreachableSince: '2026-03-01T11:00:00.000Z' }), '', NOW);
      expect(text).to.include('Reachable:      no, since 2026-03-01T11:00:00.000Z (60m ago)\n');
      expect(text.trimEnd().endsWith('Facts: not reported yet')).to.equal(true);
    });
  });

  describe('watch printer', () => {
    function capture(format: 'table' | 'json' | 'yaml' | 'wide'): { printer: NodeWatchPrinter; text: () => string } {
      let out = '';
      const printer = new NodeWatchPrinter({ write: (t) => { out += t; }, isTTY: false }, format, () => NOW, false);
      return { printer, text: () => out };
    }
    const ev = (type: string, over: Partial<Node__Output> = {}): NodeEvent__Output => ({ type, node: node(over) });

    it('table: header once, a batch aligned together, later rows keep the widths', () => {
      const { printer, text } = capture('table');
      printer.push(ev('ADDED'));
      printer.push(ev('ADDED', { id: 'node-2' }));
      expect(text()).to.equal('');
      printer.flush();
      printer.push(ev('MODIFIED', { reachable: false }));
      printer.flush();
      printer.flush();
      const lines = text().trimEnd().split('\n');
      expect(lines).to.have.length(4);
      expect(lines[0]).to.match(/^EVENT {6}ID {7}STATE {8}REACHABLE {3}GROUP/);
      expect(lines[3]).to.match(/^MODIFIED {3}node-1 {3}Discovered {3}no {10}-/);
      expect(lines.every((l) => l.indexOf('Discovered') === lines[3].indexOf('Discovered') || l.startsWith('EVENT'))).to.equal(true);
    });

    it('json: one object per line, printed at once', () => {
      const { printer, text } = capture('json');
      printer.push(ev('ADDED'));
      printer.push(ev('DELETED', { id: 'node-2' }));
      const lines = text().trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; node: { id: string; reachable: boolean } });
      expect(lines.map((l) => [l.type, l.node.id, l.node.reachable])).to.deep.equal([['ADDED', 'node-1', true], ['DELETED', 'node-2', true]]);
    });

    it('yaml: one document per event', () => {
      const { printer, text } = capture('yaml');
      printer.push(ev('ADDED'));
      expect(text()).to.match(/^---\ntype: ADDED\nnode:\n {2}id: node-1\n/);
    });

    it('events without a node are skipped', () => {
      const { printer, text } = capture('json');
      printer.push({ type: 'MODIFIED', node: null });
      expect(text()).to.equal('');
    });
  });
});
