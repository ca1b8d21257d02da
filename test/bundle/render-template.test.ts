import { expect } from 'chai';
import { parseBundle, renderBundle, renderString, templateReferences, TemplateError } from '../../shared/bundle';

const facts = { cpu: { cores: 8 }, hostname: 'n1', disks: [{ sizeBytes: 100 }], system: { virtual: false }, gpus: [] as unknown[], bios: { vendor: null } };

describe('templates', () => {
  const table: { text: string; want?: string; problem?: RegExp }[] = [
    { text: 'server {{ vars.ntp }} iburst', want: 'server pool.example iburst' },
    { text: '{{vars.ntp}}/{{  vars.port  }}', want: 'pool.example/123' },
    { text: 'cores={{ facts.cpu.cores }} host={{ facts.hostname }}', want: 'cores=8 host=n1' },
    { text: 'disk0={{ facts.disks.0.sizeBytes }} virt={{ facts.system.virtual }}', want: 'disk0=100 virt=false' },
    { text: 'labels: {{ $labels.instance }} and {{ .Values.x }}', want: 'labels: {{ $labels.instance }} and {{ .Values.x }}' },
    { text: 'x {{ vars.missing }}', problem: /^unit u1, field content: undefined variable vars\.missing \(defined: ntp, port\)$/ },
    { text: 'x {{ facts.cpu.nope }}', problem: /^unit u1, field content: undefined fact facts\.cpu\.nope$/ },
    { text: 'x {{ facts.cpu }}', problem: /facts\.cpu is of type object; name a text or number field/ },
    { text: 'x {{ facts.gpus }}', problem: /facts\.gpus is a list/ },
    { text: 'x {{ facts.bios.vendor }}', problem: /facts\.bios\.vendor is null on this node/ },
    { text: 'x {{ var.ntp }}', problem: /names no template root; use \{\{ vars\.NAME \}\}/ },
    { text: 'rack={{ node.labels.rack }}', problem: /^unit u1, field content: \{\{ node\.labels\.rack \}\}: node labels and fields are not template inputs; set the value as a group variable/ },
  ];
  for (const row of table) {
    it(`${row.text} → ${row.want ?? String(row.problem)}`, () => {
      const problems: string[] = [];
      const out = renderString(row.text, { vars: { ntp: 'pool.example', port: 123 }, facts }, { unitId: 'u1', field: 'content' }, problems);
      if (row.want !== undefined) {
        expect(problems).to.deep.equal([]);
        expect(out).to.equal(row.want);
      } else {
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(row.problem as RegExp);
      }
    });
  }

  const bundle = parseBundle(`
name: t
version: 1
variables: { dir: /opt/app, greeting: hello }
units:
  - { id: d, kind: directory, path: "{{ vars.dir }}" }
  - { id: f, kind: file, path: "{{ vars.dir }}/conf", content: "{{ vars.greeting }} {{ facts.hostname }}\\n" }
  - { id: c, kind: command, run: "echo {{ vars.greeting }}", env: { WHO: "{{ vars.nobody }}" } }
verify:
  - { id: p, command: "test -d {{ vars.dir }}" }
`);

  it('renders every templated field of units and probes; --vars override the bundle\'s', () => {
    const r = renderBundle(bundle, { facts, extraVars: { greeting: 'hi', nobody: 'x' } });
    expect(r.units[1]).to.include({ path: '/opt/app/conf', content: 'hi n1\n' });
    expect(r.units[2]).to.deep.include({ run: 'echo hi', env: { WHO: 'x' } });
    expect((r.verify[0] as { command: string }).command).to.equal('test -d /opt/app');
    // The input is not modified.
    expect(bundle.units[1]).to.include({ path: '{{ vars.dir }}/conf' });
  });

  it('push-time references refuse {{ node.labels.X }} (no such input: it would be delivered as written), naming unit and field', () => {
    const refs = templateReferences(parseBundle(`
name: t
version: 1
units:
  - { id: motd, kind: file, path: /etc/motd, content: "rack {{ node.labels.rack }} {{ $labels.instance }}\\n" }
`));
    expect(refs.problems).to.deep.equal([
      'unit motd, field content: {{ node.labels.rack }}: node labels and fields are not template inputs; set the value as a group variable ({{ vars.NAME }}) or read a fact ({{ facts.PATH }})',
    ]);
  });

  it('lists every undefined name with its unit and field, and never renders an empty string', () => {
    let err: unknown;
    try {
      renderBundle(bundle, {});
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(TemplateError);
    expect((err as TemplateError).problems).to.deep.equal([
      'unit f, field content: facts.hostname used but no facts are available (collect them, or pass --facts FILE)',
      'unit c, field env.WHO: undefined variable vars.nobody (defined: dir, greeting)',
    ]);
  });
});
