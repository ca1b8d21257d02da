/**
 * clusterctl plan/apply end to end: the built CLI as a process against a real coordinator
 * process and a real etcd. Plan changes nothing and exits 2 with changes; apply applies; a
 * second plan says no changes (exit 0); a change made between plan and apply makes apply refuse
 * (by saved plan and by --plan-revision) and nothing changes; apply with no file re-converges
 * after someone changed a group by hand; bad YAML is one clear line with its position and
 * nothing changes.
 */
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { delay, etcdSnapshot, waitFor } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { BundleStore } from '../../coordinator/config/bundle-store';
import { GroupStore, decodeGroup } from '../../coordinator/config/group-store';
import { EventLog } from '../../coordinator/event-log';
import { createLogger, Keyspace, systemClock } from '../../shared';

const BASE = (v: string, greeting: string): string =>
  `name: base\nversion: "${v}"\nvariables:\n  greeting: ${greeting}\nunits:\n  - id: motd\n    kind: file\n    path: /etc/motd\n    content: "{{ vars.greeting }}"\n`;

const CLUSTER = (version: string, ntp: string): string => [
  'bundles:',
  '  - file: bundles/base-1.yaml',
  '  - file: bundles/base-2.yaml',
  'groups:',
  '  worker:',
  `    bundle: base@${version}`,
  '    variables:',
  `      ntp: ${ntp}`,
  '    minSize: 0',
  '    verifySchedule: "0 3 * * *"',
  '    repairPolicy: repair',
  '    autoCommission: ["role=worker"]',
  '',
].join('\n');

/** The two bundle files and cluster.yaml (base@1, ntp a) under BASE_DIR/config. */
function writeConfig(baseDir: string): { dir: string; file: string } {
  const dir = join(baseDir, 'config');
  mkdirSync(join(dir, 'bundles'), { recursive: true });
  writeFileSync(join(dir, 'bundles', 'base-1.yaml'), BASE('1', 'hello'));
  writeFileSync(join(dir, 'bundles', 'base-2.yaml'), BASE('2', 'hi'));
  const file = join(dir, 'cluster.yaml');
  writeFileSync(file, CLUSTER('1', 'a'));
  return { dir, file };
}

describe('declarative: clusterctl plan/apply against a real coordinator and etcd', function () {
  this.timeout(240_000);
  const suite = e2eSuite('plan-apply');

  it('plan (exit 2) → apply → plan (exit 0); a concurrent change makes apply refuse; apply with no file re-converges; bad YAML changes nothing', async () => {
    const cluster = await suite.startCluster({ name: 'plan-apply' });
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const { dir, file } = writeConfig(cluster.baseDir);
    const config = async (): Promise<Record<string, string>> => {
      const all = await etcdSnapshot(client, ks.prefix);
      // Only configuration: events and the inventory move on their own.
      return Object.fromEntries(Object.entries(all).filter(([k]) => [ks.configsPrefix(), ks.configInfoPrefix(), ks.groupsPrefix(), ks.lastApplied()].some((p) => k.startsWith(p))));
    };
    const worker = async (): Promise<{ version: string; variables: Record<string, string> }> => {
      const text = await client.get(ks.group('worker')).string();
      if (text === null) throw new Error('no group worker');
      return decodeGroup(ks.group('worker'), text);
    };

    // --- bad YAML: one line with the position, nothing sent -----------------------------------
    const badFile = join(dir, 'bad.yaml');
    writeFileSync(badFile, 'groups:\n  worker:\n    bundle: base@1\n   variables: {a: 1\n');
    let r = await cluster.ctl(['plan', '-f', badFile]);
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^error: .*bad\.yaml is not valid YAML: .*bad\.yaml:\d+:\d+: /);
    writeFileSync(badFile, 'groups:\n  worker:\n    bundle: base@1\n    repairPolcy: repair\n');
    r = await cluster.ctl(['apply', '-f', badFile]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/bad\.yaml:4:5: unknown group key "repairPolcy"/);
    expect(await config()).to.deep.equal({});

    // --- plan: exit 2, what would change, the revision; nothing changed ------------------------
    r = await cluster.ctl(['plan', '-f', file]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stdout).to.match(/^Plan of .*cluster\.yaml at etcd revision \d+:/);
    expect(r.stdout).to.contain('+ bundle base@1: push (1 unit)');
    expect(r.stdout).to.contain('+ bundle base@2: push (1 unit)');
    expect(r.stdout).to.contain('+ group worker: create');
    expect(r.stdout).to.contain('Plan: 2 bundle version(s) to push, 1 group(s) to create, 0 to update');
    const revision = /etcd revision (\d+)/.exec(r.stdout)?.[1] ?? '';
    expect(await config()).to.deep.equal({});

    // --- apply with the plan's revision ---------------------------------------------------------
    r = await cluster.ctl(['apply', '-f', file, '--plan-revision', revision]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/Applied at etcd revision \d+\./);
    expect(await worker()).to.deep.include({ version: '1', variables: { ntp: 'a' } });
    expect(await client.get(ks.config('base', '2')).string()).to.be.a('string');
    expect(await client.get(ks.lastApplied()).string()).to.contain('base@1');

    // --- second plan: no changes, exit 0 --------------------------------------------------------
    r = await cluster.ctl(['plan', '-f', file]);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.contain('No changes');
    r = await cluster.ctl(['apply', '-f', file]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('Nothing to apply');

    // --- a change between plan and apply: refused, nothing changes -----------------------------
    writeFileSync(file, CLUSTER('2', 'b'));
    const planFile = join(dir, 'plan.json');
    r = await cluster.ctl(['plan', '-f', file, '--out', planFile]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stdout).to.contain('~ group worker: update');
    expect(r.stdout).to.contain('    bundle: base@1 → base@2');
    expect(r.stdout).to.contain('    variables.ntp: a → b');
    const revision2 = /etcd revision (\d+)/.exec(r.stdout)?.[1] ?? '';

    const logger = createLogger({ level: 'silent' });
    const events = new EventLog({ client, keyspace: ks, clock: systemClock, logger, actor: 'someone' });
    const bundles = new BundleStore({ client, keyspace: ks, events, clock: systemClock });
    const groups = new GroupStore({ client, keyspace: ks, events, clock: systemClock, bundles });
    await groups.set({ name: 'worker', bundle: 'base', version: '1', variables: { ntp: 'by-hand' } });
    const afterHand = await config();

    r = await cluster.ctl(['apply', '--plan', planFile]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/the configuration changed since the plan: .*groups\/worker .*nothing was applied — run clusterctl plan again/);
    r = await cluster.ctl(['apply', '-f', file, '--plan-revision', revision2]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/groups\/worker \(modified at revision \d+\)/);
    expect(await config()).to.deep.equal(afterHand);

    // --- apply with no file: back to the last applied configuration (base@1, ntp a) -------------
    r = await cluster.ctl(['apply']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('variables.ntp: by-hand → a');
    expect(await worker()).to.deep.include({ version: '1', variables: { ntp: 'a' } });

    // --- and the reviewed plan of the new file applies once re-planned --------------------------
    r = await cluster.ctl(['plan', '-f', file, '--out', planFile]);
    expect(r.code).to.equal(2);
    r = await cluster.ctl(['apply', '--plan', planFile]);
    expect(r.code, r.stderr).to.equal(0);
    expect(await worker()).to.deep.include({ version: '2', variables: { ntp: 'b' } });
    // The events say who applied what.
    await waitFor('config.applied events', async () => {
      const evs = Object.values(await etcdSnapshot(client, ks.eventsPrefix())).filter((v) => v.includes('"config.applied"'));
      return evs.length >= 3 ? evs : undefined;
    }, { timeoutMs: 5000 });
    await events.stop();
    await delay(0);
  });

  it('a group\'s secret variables (set with group set --secret-var) are kept by a cluster file that does not name them: no change planned, still sealed after apply', async () => {
    const cluster = await suite.startCluster({ name: 'plan-apply-secret' });
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const { dir, file } = writeConfig(cluster.baseDir);
    let r = await cluster.ctl(['apply', '-f', file]);
    expect(r.code, r.stderr).to.equal(0);
    const secretFile = join(dir, 'db-password');
    writeFileSync(secretFile, 'hunter2-plan-apply');
    r = await cluster.ctl(['group', 'set', 'worker', '--secret-var', `db_password=@${secretFile}`]);
    expect(r.code, r.stderr).to.equal(0);
    const sealed = async (): Promise<string | undefined> => {
      const text = await client.get(ks.group('worker')).string();
      return text === null ? undefined : decodeGroup(ks.group('worker'), text).variables.db_password;
    };
    const before = await sealed();
    expect(before).to.match(/^secret:v1:/);
    r = await cluster.ctl(['plan', '-f', file]);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.contain('No changes');
    writeFileSync(file, CLUSTER('1', 'b'));
    r = await cluster.ctl(['apply', '-f', file]);
    expect(r.code, r.stderr).to.equal(0);
    expect(await sealed(), 'the sealed value is kept as it was').to.equal(before);
    expect(await client.get(ks.lastApplied()).string()).to.not.contain('secret:v1:');
  });
});
