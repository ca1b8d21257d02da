import { expect } from 'chai';
import { INPUT_LIMITS } from '../../shared/input-limits';
import { InvalidArgumentError } from '../../shared/errors';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import Ajv from 'ajv';
import { BundleValidationError, bundleProblems, parseBundle, validateBundle } from '../../shared/bundle';
import { REPO_ROOT } from '../helpers';

/** DESIGN.md's example bundle, verbatim. */
const DESIGN_EXAMPLE = `
name: base
version: 3
variables:
  ntp_server: 0.pool.ntp.org
units:
  - id: chrony-conf
    kind: file
    path: /etc/chrony.conf
    content: |
      server {{ vars.ntp_server }} iburst
    mode: "0644"
  - id: app-dir
    kind: directory
    path: /opt/app
    mode: "0755"
  - id: chrony-pkg
    kind: package
    name: chrony
  - id: chronyd
    kind: systemd
    unit: chronyd.service
    enabled: true
    state: running
    restartWhenChanged: [chrony-conf]
  - id: marker
    kind: command
    run: touch /opt/app/.initialised
    creates: /opt/app/.initialised
    undo: rm -f /opt/app/.initialised
verify:
  - id: chronyd-active
    systemdActive: chronyd.service
  - id: ntp-port
    tcp: 127.0.0.1:323
`;

function problemsOf(yaml: string): string[] {
  return bundleProblems(parseYaml(yaml));
}

const unit = (extra: string): string => `name: b\nversion: 1\nunits:\n${extra}`;

describe('bundle validation', () => {
  it('accepts DESIGN.md\'s example and compiles it (version to string, defaults filled)', () => {
    const b = parseBundle(DESIGN_EXAMPLE);
    expect(b.version).to.equal('3');
    expect(b.units.map((u) => u.id)).to.deep.equal(['chrony-conf', 'app-dir', 'chrony-pkg', 'chronyd', 'marker']);
    expect(b.verify).to.have.length(2);
  });

  it('the shipped schema file is a standalone JSON Schema that editors can use (no custom code needed)', () => {
    const schema = JSON.parse(readFileSync(join(REPO_ROOT, 'shared', 'bundle', 'bundle.schema.json'), 'utf8')) as object;
    // A plain Ajv, not strict (editors ignore unknown annotation keywords like errorHint).
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    expect(validate(parseYaml(DESIGN_EXAMPLE))).to.equal(true);
    expect(validate({ name: 'x', version: 1, units: [{ id: 'a', kind: 'file', path: '/a', content: '', mode: 644 }] })).to.equal(false);
  });

  it('compiles durations ("30s", "500ms", a number of seconds) to timeoutMs', () => {
    const b = parseBundle(unit(`  - { id: a, kind: command, run: "true", timeout: 30s }
  - { id: b, kind: command, run: "true", timeout: 500ms }
  - { id: c, kind: command, run: "true", timeout: 2 }
  - { id: d, kind: command, run: "true", timeoutMs: 1500 }
verify:
  - { id: p, tcp: "127.0.0.1:1", timeout: 2m }`));
    expect(b.units.map((u) => u.timeoutMs)).to.deep.equal([30_000, 500, 2000, 1500]);
    expect(b.verify[0].timeoutMs).to.equal(120_000);
    expect(b.units[0]).to.not.have.property('timeout');
  });

  // Each row: a broken bundle and the exact lines that must be among its problems.
  const table: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'mode given as a YAML number',
      yaml: unit('  - { id: a, kind: file, path: /a, content: x }\n  - { id: b, kind: file, path: /b, content: x }\n  - { id: c, kind: file, path: /c, content: x }\n  - { id: d, kind: file, path: /d, content: x, mode: 0644 }'),
      expect: ['units[3].mode: must be an octal string like "0644" (quote it: YAML reads 0644 as a decimal number)'],
    },
    { name: 'mode with a non-octal digit', yaml: unit('  - { id: a, kind: directory, path: /a, mode: "0698" }'), expect: ['units[0].mode: must be an octal string like "0644" (quote it: YAML reads 0644 as a decimal number)'] },
    { name: 'duplicate unit ids', yaml: unit('  - { id: a, kind: directory, path: /a }\n  - { id: a, kind: directory, path: /b }'), expect: ['units[1].id: duplicate id "a" (first used by units[0])'] },
    {
      name: 'restartWhenChanged naming an unknown id and a later one',
      yaml: unit('  - { id: s, kind: systemd, unit: x.service, restartWhenChanged: [ghost, f] }\n  - { id: f, kind: file, path: /f, content: "" }'),
      expect: ['units[0].restartWhenChanged[0]: unknown unit id "ghost"', 'units[0].restartWhenChanged[1]: "f" must come before this unit (units run in order)'],
    },
    { name: 'both content and source', yaml: unit('  - { id: a, kind: file, path: /a, content: x, source: y }'), expect: ['units[0]: exactly one of content or source is required (both given)'] },
    { name: 'neither content nor source', yaml: unit('  - { id: a, kind: file, path: /a }'), expect: ['units[0]: exactly one of content or source is required'] },
    { name: 'unknown key', yaml: unit('  - { id: a, kind: directory, path: /a, colour: red }'), expect: ['units[0]: unknown key "colour" (allowed: id, kind, timeout, timeoutMs, path, mode, owner, group, ensure)'] },
    { name: 'unknown top-level key', yaml: `${unit('  - { id: a, kind: directory, path: /a }')}\nextra: 1`, expect: ['bundle: unknown key "extra" (allowed: name, version, description, variables, units, verify)'] },
    { name: 'unknown kind', yaml: unit('  - { id: a, kind: mystery }'), expect: ['units[0].kind: must be one of "file", "directory", "package", "systemd", "command" (got "mystery")'] },
    { name: 'missing required fields', yaml: unit('  - { id: a, kind: command }\n  - { kind: file, path: /x, content: "" }'), expect: ['units[0].run: is required', 'units[1].id: is required'] },
    { name: 'relative path', yaml: unit('  - { id: a, kind: directory, path: opt/app }'), expect: ['units[0].path: must be an absolute path (starting with /, or with a template that renders one), without ".." segments or NUL bytes'] },
    { name: 'a .. segment', yaml: unit('  - { id: a, kind: directory, path: /opt/../etc }'), expect: ['units[0].path: must be an absolute path (starting with /, or with a template that renders one), without ".." segments or NUL bytes'] },
    { name: 'a NUL byte', yaml: unit('  - { id: a, kind: directory, path: "/opt/a\\0b" }'), expect: ['units[0].path: must be an absolute path (starting with /, or with a template that renders one), without ".." segments or NUL bytes'] },
    { name: 'bad duration', yaml: unit('  - { id: a, kind: command, run: "true", timeout: soon }'), expect: ['units[0].timeout: must be a duration such as "30s", "500ms", "2m" or a number of seconds'] },
    { name: 'probe with two kinds', yaml: `${unit('  - { id: a, kind: directory, path: /a }')}\nverify:\n  - { id: p, tcp: "h:1", command: "true" }`, expect: ['verify[0]: exactly one of command, tcp, http, systemdActive is required (got command and tcp)'] },
    { name: 'probe port out of range', yaml: `${unit('  - { id: a, kind: directory, path: /a }')}\nverify:\n  - { id: p, tcp: "127.0.0.1:70000" }`, expect: ['verify[0].tcp: port 70000 is out of range 1-65535'] },
    { name: 'missing name and units', yaml: 'version: 1', expect: ['name: is required', 'units: is required'] },
    { name: 'not a mapping', yaml: '- a\n- b', expect: ['bundle: must be a mapping with name, version and units (got a list)'] },
  ];
  for (const row of table) {
    it(`refuses: ${row.name}`, () => {
      const problems = problemsOf(row.yaml);
      for (const line of row.expect) expect(problems).to.include(line);
    });
  }

  it('lists every problem of a bundle at once, in document order, and returns no bundle', () => {
    const yaml = unit(`  - { id: a, kind: file, path: /a, content: x, mode: 644 }
  - { id: a, kind: directory, path: rel }
  - { id: s, kind: systemd, unit: x.service, restartWhenChanged: [nope] }
  - { id: c, kind: command, run: "true", bogus: 1 }
verify:
  - { id: p, http: "ftp://x" }`);
    let err: unknown;
    try {
      validateBundle(parseYaml(yaml));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(BundleValidationError);
    const problems = (err as BundleValidationError).problems;
    expect(problems).to.deep.equal([
      'units[0].mode: must be an octal string like "0644" (quote it: YAML reads 0644 as a decimal number)',
      'units[1].id: duplicate id "a" (first used by units[0])',
      'units[1].path: must be an absolute path (starting with /, or with a template that renders one), without ".." segments or NUL bytes',
      'units[2].restartWhenChanged[0]: unknown unit id "nope"',
      'units[3]: unknown key "bogus" (allowed: id, kind, timeout, timeoutMs, run, creates, unless, onlyIf, undo, env, cwd)',
      'verify[0].http: must be an http:// or https:// URL',
    ]);
    expect((err as Error).message).to.match(/^invalid bundle b \(6 problems\): units\[0\]\.mode/);
  });

  it('reports YAML syntax errors with their position', () => {
    expect(() => parseBundle('name: x\nunits: [\n', 'f.yaml')).to.throw(/f\.yaml is not valid YAML: .*line/i);
    expect(() => parseBundle('name: x\nname: y\nversion: 1\nunits: []', 'g.yaml')).to.throw(/g\.yaml is not valid YAML: .*unique/i);
  });

  it('bounds what it parses: size, nesting, keys, aliases and units are refused in one short line that does not echo the input', () => {
    const refusals: [string, string, RegExp][] = [
      ['over the size limit', `name: x\nversion: 1\nunits: []\ndescription: "${'a'.repeat(INPUT_LIMITS.bundleBytes)}"\n`, /is \d+ bytes; the limit is/],
      ['deep flow nesting', `name: x\nversion: 1\nunits: []\nvariables: ${'['.repeat(5000)}`, /nested too deep/],
      ['deep block nesting', `name: x\nversion: 1\nunits: []\nvariables:\n${'- '.repeat(5000)}x\n`, /nested too deep/],
      ['a map of too many keys', `name: x\nversion: 1\nunits: []\nvariables:\n${Array.from({ length: INPUT_LIMITS.mapKeys + 1 }, (_, i) => `  v${i}: 1`).join('\n')}\n`, /mapping of \d+ keys; the limit is/],
      ['an alias bomb', `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`, /aliases beyond the limit/],
      ['a self-referencing anchor', 'name: x\nversion: 1\nunits: []\nvariables: &a [*a]\n', /refers to itself/],
      ['33 block levels of mappings', `name: x\nversion: 1\nunits: []\nvariables:\n${Array.from({ length: 33 }, (_, d) => `${'  '.repeat(d + 1)}k${d}:`).join('\n')} 1\n`, /nested too deep \(more than 32 block levels\)/],
      ['a flow map of too many keys', `name: x\nversion: 1\nunits: []\nvariables: {${Array.from({ length: INPUT_LIMITS.mapKeys + 1 }, (_, i) => `v${i}: 1`).join(', ')}}\n`, /has a mapping of more than \d+ keys/],
      ['more values than the bound, in flow sequences', `name: x\nversion: 1\nunits: []\nverify: [${Array.from({ length: INPUT_LIMITS.yamlNodes + 1 }, () => '[1]').join(', ')}]\n`, /has more than \d+ values/],
      ['too many units', `name: x\nversion: 1\nunits:\n${Array.from({ length: INPUT_LIMITS.unitsPerBundle + 1 }, (_, i) => `  - { id: u${i}, kind: directory, path: /d${i} }`).join('\n')}\n`, /a bundle holds at most/],
    ];
    // Not nesting: a block scalar's own indentation, however deep, and 31 block levels.
    const script = Array.from({ length: 60 }, (_, d) => `${'  '.repeat(d + 3)}echo ${d}`).join('\n');
    expect(parseBundle(`name: x\nversion: 1\nunits:\n  - id: c\n    kind: file\n    path: /x\n    content: |\n${script}\n`, 'b.yaml').units).to.have.length(1);
    const deepest = `name: x\nversion: 1\nunits: []\nvariables:\n  v:\n${Array.from({ length: 29 }, (_, d) => `${'  '.repeat(d + 2)}k${d}:`).join('\n')} 1\n`;
    expect(() => parseBundle(deepest, 'b.yaml')).to.not.throw(/nested too deep/);
    for (const [name, yaml, match] of refusals) {
      let err: unknown;
      try {
        parseBundle(yaml, 'b.yaml');
      } catch (e) {
        err = e;
      }
      expect(err, name).to.be.instanceOf(InvalidArgumentError);
      expect((err as Error).message, name).to.match(match);
      expect((err as Error).message.length, name).to.be.below(300);
    }
  });
});
