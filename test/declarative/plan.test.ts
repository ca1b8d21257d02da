/**
 * Pure logic of plan/apply, by table: the cluster file parser (every problem with its line,
 * file: bundles resolved, canonical document round trip), the plan diff (bundles, groups with
 * field diffs, nodes to upgrade, nodes newly auto-commissioned, problems), and which keys
 * changed since a plan.
 */
import { expect } from 'chai';
import type { NodeRecord } from '../../shared';
import { canonicalJson, validateBundle, type Bundle } from '../../shared/bundle';
import type { GroupRecord } from '../../coordinator/config/group-store';
import { canonicalDocument, parseClusterFile, type ClusterFile } from '../../shared/cluster-file';
import { formatPlan, planConfig, type StoredConfig } from '../../coordinator/declarative/plan';
import { changedSince } from '../../coordinator/declarative/apply';

const BASE_V1 = 'name: base\nversion: 1\nunits:\n  - id: motd\n    kind: file\n    path: /etc/motd\n    content: hi\n';

function bundle(name: string, version: string, content = 'hi'): Bundle {
  return validateBundle({ name, version, units: [{ id: 'motd', kind: 'file', path: '/etc/motd', content }] });
}

/** A bundle whose templates read two variables: ntp (the group sets it) and pool (a default, or a global). */
const NTP_V2 = validateBundle({ name: 'base', version: '2', variables: { pool: 'p' }, units: [{ id: 'c', kind: 'file', path: '/x', content: 'server {{ vars.ntp }} pool {{ vars.pool }}' }] });

function node(id: string, extra: Partial<NodeRecord> = {}): { record: NodeRecord } {
  return {
    record: {
      id, state: 'Discovered', stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', ...extra,
    },
  };
}

function group(name: string, ref: string, extra: Partial<GroupRecord> = {}): GroupRecord {
  const [b, v] = ref.split('@');
  return { name, bundle: b, version: v, variables: {}, repairPolicy: 'report', ...extra };
}

function stored(extra: Partial<StoredConfig> = {}): StoredConfig {
  return { bundles: new Map(), groups: new Map(), files: new Set(), nodes: [], activeJobs: new Set(), ...extra };
}

describe('declarative: cluster file parsing (table)', () => {
  const files: Record<string, string> = { 'bundles/base.yaml': BASE_V1 };
  const readFile = (p: string): string => {
    const t = files[p];
    if (t === undefined) throw new Error('ENOENT: no such file');
    return t;
  };

  const bad: [string, string, RegExp][] = [
    ['YAML syntax', 'groups:\n  worker:\n    bundle: [base@1\n', /^c\.yaml is not valid YAML: c\.yaml:\d+:\d+: /],
    ['unknown top-level key, with its line', 'bundles: []\ngroupz: {}\n', /c\.yaml:2:1: unknown key "groupz"/],
    ['bad bundle reference', 'groups:\n  worker:\n    bundle: base\n', /c\.yaml:3:13: group worker: bundle must be NAME@VERSION/],
    ['bad cron, with the group line', 'groups:\n  worker:\n    bundle: base@1\n    verifySchedule: "every day"\n', /c\.yaml:3:5: invalid group worker .*verifySchedule/],
    ['missing bundle file', 'bundles:\n  - file: nope.yaml\n', /c\.yaml:2:11: cannot read bundle file nope\.yaml/],
    ['invalid inline bundle', 'bundles:\n  - name: x\n', /c\.yaml:2:5: bundles\[0\]: /],
    ['auto-commission rule for an unknown group', 'autoCommission:\n  - group: ghost\n    selector: a=b\n', /c\.yaml:2:12: group ghost is not defined/],
    ['empty file', '', /c\.yaml is empty/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses: ${what}`, () => {
      expect(() => parseClusterFile(text, { source: 'c.yaml', readFile })).to.throw(message);
    });
  }

  it('resolves file: bundles, merges top-level auto-commission rules, and round-trips through the canonical document', () => {
    const text = [
      'bundles:',
      '  - file: bundles/base.yaml',
      '  - {name: app, version: "2", units: []}',
      'groups:',
      '  worker:',
      '    bundle: base@1',
      '    variables: {ntp: 10.0.0.1, n: 3}',
      '    minSize: 1',
      '    autoCommission: ["role=worker"]',
      'autoCommission:',
      '  - {group: worker, selector: "facts.cpuCores=16"}',
    ].join('\n');
    const f = parseClusterFile(text, { source: 'c.yaml', readFile });
    expect(f.bundles.map((b) => `${b.name}@${b.version}`)).to.deep.equal(['app@2', 'base@1']);
    expect(f.groups).to.have.length(1);
    expect(f.groups[0]).to.deep.include({ name: 'worker', bundle: 'base', version: '1', variables: { ntp: '10.0.0.1', n: '3' }, minSize: 1 });
    expect(f.groups[0].autoCommission).to.deep.equal([{ selector: 'role=worker' }, { selector: 'facts.cpuCores=16' }]);
    const doc = canonicalDocument(f);
    const again = parseClusterFile(doc, { source: 'doc' });
    expect(canonicalDocument(again)).to.equal(doc);
    // The coordinator never reads files: an unresolved file: entry is refused there.
    expect(() => parseClusterFile('bundles:\n  - file: bundles/base.yaml\n', { source: 'doc' })).to.throw(/was not resolved/);
  });
});

describe('declarative: plan (table)', () => {
  const desired = (over: Partial<ClusterFile> = {}): ClusterFile => ({
    bundles: [bundle('base', '2')],
    groups: [{ name: 'worker', bundle: 'base', version: '2', variables: { ntp: 'b' }, repairPolicy: 'report' }],
    ...over,
  });

  const rows: {
    what: string; file: ClusterFile; stored: StoredConfig;
    expect: { pushes?: string[]; groups?: Record<string, string>; changes?: string[]; upgrades?: string[]; reasons?: string[]; auto?: string[]; problems?: RegExp[]; hasChanges: boolean };
  }[] = [
    {
      what: 'empty cluster: push the bundle, create the group',
      file: desired(), stored: stored(),
      expect: { pushes: ['base@2'], groups: { worker: 'create' }, hasChanges: true },
    },
    {
      what: 'everything stored and equal: no changes',
      file: desired(),
      stored: stored({ bundles: new Map([['base@2', canonicalJson(bundle('base', '2'))]]), groups: new Map([['worker', group('worker', 'base@2', { variables: { ntp: 'b' } })]]) }),
      expect: { pushes: [], groups: { worker: 'unchanged' }, hasChanges: false },
    },
    {
      what: 'version bump: field diffs, and the group\'s nodes on another version are upgraded',
      file: desired(),
      stored: stored({
        bundles: new Map([['base@1', canonicalJson(bundle('base', '1'))]]),
        groups: new Map([['worker', group('worker', 'base@1', { variables: { ntp: 'a', old: 'x' } })]]),
        nodes: [node('n1', { group: 'worker', state: 'Commissioned', appliedConfig: 'base@1' }), node('n2', { group: 'other' }), node('n3', { group: 'worker', state: 'Upgraded', appliedConfig: 'base@2' })],
      }),
      expect: {
        pushes: ['base@2'], groups: { worker: 'update' },
        changes: ['bundle: base@1 → base@2', 'variables.ntp: a → b', 'variables.old: x → (none)'],
        upgrades: ['n1:base@1→base@2'], hasChanges: true,
      },
    },
    {
      what: 'a group variable changed after the nodes applied (group set): same version, but the nodes whose applied variables differ are to upgrade, -e ones too',
      file: desired({ bundles: [NTP_V2] }),
      stored: stored({
        bundles: new Map([['base@2', canonicalJson(NTP_V2)]]),
        groups: new Map([['worker', group('worker', 'base@2', { variables: { ntp: 'b' } })]]),
        nodes: [
          node('n1', { group: 'worker', state: 'Commissioned', appliedConfig: 'base@2', appliedInputs: { bundle: 'base@2', variables: { ntp: 'a', pool: 'p' }, facts: {} } }),
          node('n2', { group: 'worker', state: 'Commissioned', appliedConfig: 'base@2', appliedInputs: { bundle: 'base@2', variables: { ntp: 'b', pool: 'p' }, facts: {} } }),
          node('n3', { group: 'worker', state: 'Upgraded', appliedConfig: 'base@2', appliedInputs: { bundle: 'base@2', variables: { ntp: 'x', pool: 'p' }, facts: {}, extraVars: ['ntp'] } }),
        ],
      }),
      expect: {
        groups: { worker: 'unchanged' }, upgrades: ['n1:base@2→base@2', 'n3:base@2→base@2'], hasChanges: false,
        reasons: ['vars.ntp "a" → "b"', 'vars.ntp "x" → "b" (applied with -e)'],
      },
    },
    {
      what: 'a global changed: the nodes of groups that do not set it are to upgrade',
      file: desired({ bundles: [NTP_V2] }),
      stored: stored({
        bundles: new Map([['base@2', canonicalJson(NTP_V2)]]),
        groups: new Map([['worker', group('worker', 'base@2', { variables: { ntp: 'b' } })]]),
        globals: { pool: 'q' },
        nodes: [node('n1', { group: 'worker', state: 'Commissioned', appliedConfig: 'base@2', appliedInputs: { bundle: 'base@2', variables: { ntp: 'b', pool: 'p' }, facts: {} } })],
      }),
      expect: { groups: { worker: 'unchanged' }, upgrades: ['n1:base@2→base@2'], hasChanges: false, reasons: ['vars.pool "p" → "q"'] },
    },
    {
      what: 'a stored version with other content is a conflict (versions are immutable)',
      file: desired(),
      stored: stored({ bundles: new Map([['base@2', canonicalJson(bundle('base', '2', 'other'))]]) }),
      expect: { problems: [/bundle base@2 is stored with different content/], hasChanges: true },
    },
    {
      what: 'a group naming a bundle neither stored nor in the file',
      file: desired({ bundles: [] }), stored: stored(),
      expect: { problems: [/group worker: bundle base@2 is neither stored nor listed/], hasChanges: true },
    },
    {
      what: 'a source file that is not uploaded',
      file: desired({ bundles: [validateBundle({ name: 'base', version: '2', units: [{ id: 'c', kind: 'file', path: '/x', source: 'ca.pem' }] })] }),
      stored: stored(),
      expect: { problems: [/source file "ca\.pem" is not uploaded/], hasChanges: true },
    },
    {
      what: 'a misspelt template root and an unknown fact in a bundle of the file',
      file: desired({ bundles: [validateBundle({ name: 'base', version: '2', units: [{ id: 'c', kind: 'file', path: '/x', content: '{{ var.ntp }} {{ facts.cpu.corez }}' }] })] }),
      stored: stored(),
      expect: { problems: [/bundle base@2: unit c, field content: \{\{ var\.ntp \}\} names no template root/, /bundle base@2: unit c, field content: unknown fact facts\.cpu\.corez/], hasChanges: true },
    },
    {
      what: 'a group that leaves a variable of its bundle unset, and depends on a group that exists nowhere',
      file: desired({
        bundles: [validateBundle({ name: 'base', version: '2', units: [{ id: 'c', kind: 'file', path: '/x', content: 'server {{ vars.ntp }} {{ vars.pool }}' }] })],
        groups: [{ name: 'worker', bundle: 'base', version: '2', variables: { ntp: 'b' }, repairPolicy: 'report', dependsOn: ['nosuchgroup'] }],
      }),
      stored: stored(),
      expect: {
        problems: [/group worker: bundle base@2 uses variables that neither the bundle defines nor the group sets: pool \(unit c, field content\)/, /group worker: depends on group nosuchgroup, which is neither stored nor in the file/],
        hasChanges: true,
      },
    },
    {
      what: 'a group with allowed paths whose bundle (of the file or stored) writes outside them; a new list is a change',
      file: desired({
        bundles: [validateBundle({ name: 'base', version: '2', units: [{ id: 'c', kind: 'file', path: '/etc/myapp2/x', content: 'x' }] })],
        groups: [
          { name: 'worker', bundle: 'base', version: '2', variables: {}, repairPolicy: 'report', allowedPaths: ['/etc/myapp'] },
          { name: 'old', bundle: 'base', version: '1', variables: {}, repairPolicy: 'report', allowedPaths: ['/opt'] },
        ],
      }),
      stored: stored({ bundles: new Map([['base@1', canonicalJson(bundle('base', '1'))]]) }),
      expect: {
        problems: [
          /^group worker: bundle base@2 refused: unit c writes "\/etc\/myapp2\/x", outside the allowed paths \(\/etc\/myapp\)$/,
          /^group old: bundle base@1 refused: unit \w+ writes "\/etc\/[^"]+", outside the allowed paths \(\/opt\)$/,
        ],
        hasChanges: true,
      },
    },
    {
      what: 'a new auto-commission rule: Discovered, free, not in maintenance nodes that match',
      file: desired({ groups: [{ name: 'worker', bundle: 'base', version: '2', variables: { ntp: 'b' }, repairPolicy: 'report', autoCommission: [{ selector: 'role=worker' }] }] }),
      stored: stored({
        bundles: new Map([['base@2', canonicalJson(bundle('base', '2'))]]),
        groups: new Map([['worker', group('worker', 'base@2', { variables: { ntp: 'b' } })]]),
        nodes: [
          node('d1', { labels: { role: 'worker' } }),
          node('d2', { labels: { role: 'worker' }, maintenance: true }),
          node('d3', { labels: { role: 'db' } }),
          node('d4', { labels: { role: 'worker' }, state: 'Commissioned' }),
          node('d5', { labels: { role: 'worker' }, currentJob: 'j-1' }),
        ],
        activeJobs: new Set(['j-1']),
      }),
      expect: { groups: { worker: 'update' }, changes: ['autoCommission: (none) → role=worker'], auto: ['d1:worker'], hasChanges: true },
    },
  ];

  for (const row of rows) {
    it(row.what, () => {
      const p = planConfig(row.file, row.stored);
      const e = row.expect;
      if (e.pushes) expect(p.bundles.filter((b) => b.action === 'push').map((b) => b.ref)).to.deep.equal(e.pushes);
      if (e.groups) expect(Object.fromEntries(p.groups.map((g) => [g.name, g.action]))).to.deep.equal(e.groups);
      if (e.changes) expect(p.groups.flatMap((g) => g.changes.map((c) => `${c.field}: ${c.from} → ${c.to}`))).to.deep.equal(e.changes);
      expect(p.upgrades.map((u) => `${u.nodeId}:${u.from}→${u.to}`)).to.deep.equal(e.upgrades ?? []);
      if (e.reasons) expect(p.upgrades.flatMap((u) => u.reasons)).to.deep.equal(e.reasons);
      expect(p.autoCommission.map((a) => `${a.nodeId}:${a.group}`)).to.deep.equal(e.auto ?? []);
      expect(p.problems).to.have.length((e.problems ?? []).length);
      (e.problems ?? []).forEach((re, i) => expect(p.problems[i]).to.match(re));
      expect(p.hasChanges).to.equal(e.hasChanges);
      const text = formatPlan(p);
      expect(text.endsWith('\n')).to.equal(true);
      if (!p.hasChanges && p.problems.length === 0 && p.upgrades.length === 0) expect(text).to.contain('No changes');
      else expect(text).to.match(/^Plan: /m);
      if (p.upgrades.length > 0) expect(text).to.contain(`${p.upgrades.length} node(s) to upgrade`);
    });
  }
});

describe('declarative: what changed since a plan (table)', () => {
  const now = { 'k/a': '10', 'k/b': '0', 'k/c': '25' };
  const rows: [string, Parameters<typeof changedSince>[1], string[]][] = [
    ['saved plan, nothing moved', { planReads: { 'k/a': '10', 'k/b': '0', 'k/c': '25' } }, []],
    ['saved plan, a key modified', { planReads: { 'k/a': '9', 'k/b': '0', 'k/c': '25' } }, ['k/a (revision 9 at plan time, now revision 10)']],
    ['saved plan, a key created since', { planReads: { 'k/a': '10', 'k/b': '0', 'k/c': '0' } }, ['k/c (absent at plan time, now revision 25)']],
    ['saved plan, a key deleted since', { planReads: { 'k/a': '10', 'k/b': '7', 'k/c': '25' } }, ['k/b (revision 7 at plan time, now absent)']],
    ['plan revision after every change', { planRevision: '30' }, []],
    ['plan revision before a change', { planRevision: '20' }, ['k/c (modified at revision 25)']],
    ['no plan given', {}, []],
  ];
  for (const [what, by, out] of rows) it(what, () => expect(changedSince(now, by)).to.deep.equal(out));
});
