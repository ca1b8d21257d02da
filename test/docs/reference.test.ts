/**
 * The operator's reference stays true: every field of the bundle JSON schema appears in
 * docs/operations.md's "Bundle reference" (a unit kind's own fields under its "### kind: X"
 * heading), and every key the cluster-file parser accepts in its "Cluster file reference".
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers';
import { AUTO_COMMISSION_RULE_KEYS, GROUP_KEYS, TOP_KEYS } from '../../shared/cluster-file';

interface SchemaObject { properties?: Record<string, unknown> }
interface Schema extends SchemaObject { definitions: Record<string, SchemaObject> }

const doc = readFileSync(join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
const schema = JSON.parse(readFileSync(join(REPO_ROOT, 'shared', 'bundle', 'bundle.schema.json'), 'utf8')) as Schema;

/** The text from `heading` (a whole line) to the next heading of the same or a higher level. */
function section(heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 2;
  const lines = doc.split('\n');
  const start = lines.indexOf(heading);
  expect(start, `heading ${JSON.stringify(heading)} in docs/operations.md`).to.be.greaterThan(-1);
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    const m = /^(#+) /.exec(lines[i]);
    if (m && m[1].length <= level) { end = i; break; }
  }
  return lines.slice(start, end).join('\n');
}

/** A field documented in a table row: "| `name` |". */
function documented(text: string, field: string): boolean {
  return text.includes(`| \`${field}\` |`);
}

function fields(def: SchemaObject | undefined): string[] {
  return Object.keys(def?.properties ?? {});
}

describe('docs/operations.md: the bundle and cluster-file reference', () => {
  const bundle = section('## Bundle reference');
  const common = section('### Fields every unit has');

  it('documents every top-level bundle field', () => {
    const missing = fields(schema).filter((f) => !documented(section('### Top-level fields'), f));
    expect(missing).to.deep.equal([]);
  });

  it('documents every unit kind, each with all of its fields', () => {
    const kinds = ['file', 'directory', 'package', 'systemd', 'command'];
    const shared = fields(schema.definitions.unit);
    for (const f of [...shared, 'timeout', 'timeoutMs']) expect(documented(common, f), `common field ${f}`).to.equal(true);
    for (const kind of kinds) {
      const own = section(`### kind: ${kind}`);
      const def = schema.definitions[`${kind}Unit`];
      expect(def, `${kind}Unit in the schema`).to.not.equal(undefined);
      const missing = fields(def).filter((f) => !['id', 'kind', 'timeout', 'timeoutMs'].includes(f) && !documented(own, f));
      expect(missing, `fields of kind ${kind} missing from its section`).to.deep.equal([]);
      expect(own, `an example for kind ${kind}`).to.include('```yaml');
    }
    // No unit kind in the schema without a section.
    const schemaKinds = Object.keys(schema.definitions).filter((k) => k.endsWith('Unit')).map((k) => k.slice(0, -4));
    expect(schemaKinds.sort()).to.deep.equal([...kinds].sort());
  });

  it('documents every verify probe field', () => {
    const probes = section('### Verify probes');
    expect(fields(schema.definitions.probe).filter((f) => !documented(probes, f))).to.deep.equal([]);
  });

  it('has an example bundle', () => {
    expect(bundle).to.match(/```yaml\nname: /);
  });

  it('documents every key of the cluster file', () => {
    expect(TOP_KEYS.filter((k) => !documented(section('### Top-level keys'), k))).to.deep.equal([]);
    expect(GROUP_KEYS.filter((k) => !documented(section('### Group keys'), k))).to.deep.equal([]);
    expect(AUTO_COMMISSION_RULE_KEYS.filter((k) => !documented(section('### autoCommission entries'), k))).to.deep.equal([]);
    expect(section('## Cluster file reference (plan/apply)')).to.include('```yaml\nbundles:');
  });
});
