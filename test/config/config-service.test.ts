/**
 * ConfigService over real gRPC on 127.0.0.1 against a real etcd: bundle push (valid, invalid,
 * duplicate version, idempotent, template references), groups (bad cron, unknown bundle version,
 * stale revision, unknown dependencies, unset variables), group and bundle delete — every refusal
 * leaves etcd exactly as it was.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { EtcdServer, testPki, type TestPki } from '../helpers';
import { serverCredentials } from '../../shared/pki';
import { EventLog } from '../../coordinator/event-log';
import { BundleStore, compareVersions } from '../../coordinator/config/bundle-store';
import { GroupStore, checkGroup } from '../../coordinator/config/group-store';
import { GlobalsStore } from '../../coordinator/config/globals-store';
import { ManagerConfigStore } from '../../coordinator/config/manager-config-store';
import { createConfigServiceHandlers } from '../../coordinator/config/config-service';
import { FileStore } from '../../coordinator/files/file-store';
import { createLogger, fromGrpcError, Keyspace, loadProto, systemClock, decodeEvent, type ClusterError } from '../../shared';
import { DEFAULT_SETTINGS } from '../../coordinator/options';
import type { ConfigServiceClient } from '../../generated/cluster/v1/ConfigService';
import type { Group } from '../../generated/cluster/v1/Group';

const logger = createLogger({ level: 'silent' });

const BASE_V1 = `
name: base
version: 1
variables:
  greeting: hello
units:
  - id: motd
    kind: file
    path: /etc/motd
    content: "{{ vars.greeting }}\\n"
    mode: "0644"
`;

function call<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res)));
  });
}

describe('config: bundles and groups (real etcd, real gRPC)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let ks: Keyspace;
  let server: grpc.Server;
  let api: ConfigServiceClient;
  let adminApi: ConfigServiceClient;
  let pki: TestPki;

  before(async () => {
    etcd = await EtcdServer.start('config');
    client = etcd.client();
    pki = await testPki();
  });
  after(async () => {
    await etcd.destroy();
  });
  beforeEach(async () => {
    ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
    const events = new EventLog({ client, keyspace: ks, clock: systemClock, logger, actor: 'coordinator/test' });
    const bundles = new BundleStore({ client, keyspace: ks, events, clock: systemClock });
    const groups = new GroupStore({ client, keyspace: ks, events, clock: systemClock, bundles });
    const globals = new GlobalsStore({ client, keyspace: ks, events, clock: systemClock, bundles, groups });
    const { api: proto } = loadProto();
    server = new grpc.Server();
    server.addService(proto.cluster.v1.ConfigService.service, createConfigServiceHandlers({ bundles, groups, globals, managerConfig: new ManagerConfigStore({ client, keyspace: ks, events, clock: systemClock }), retention: DEFAULT_SETTINGS, files: new FileStore({ client, keyspace: ks, events, clock: systemClock }), logger }));
    const serving = await pki.identity('coordinator', 'config-test');
    const creds = serverCredentials({ caPem: pki.caPem, certPem: serving.certPem, keyPem: serving.keyPem });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
    api = new proto.cluster.v1.ConfigService(`127.0.0.1:${port}`, await pki.credentials('operator', 'olga'));
    adminApi = new proto.cluster.v1.ConfigService(`127.0.0.1:${port}`, await pki.credentials('admin'));
  });
  afterEach(async () => {
    api.close();
    adminApi.close();
    await new Promise<void>((res) => server.tryShutdown(() => res()));
  });

  /** Everything under the test prefix, for "nothing changed" checks. */
  async function dump(): Promise<Record<string, string>> {
    return client.getAll().prefix(ks.prefix).strings();
  }

  async function eventsOfType(type: string): Promise<string[]> {
    const all = await client.getAll().prefix(ks.eventsPrefix()).strings();
    return Object.entries(all).map(([k, v]) => decodeEvent(k, v)).filter((e) => e.type === type).map((e) => e.message);
  }

  async function refused(p: Promise<unknown>): Promise<ClusterError> {
    try {
      await p;
    } catch (err) {
      return err as ClusterError;
    }
    throw new Error('expected a refusal');
  }

  it('stores a valid bundle as an immutable version with digest and event', async () => {
    const info = await call(api.PushBundle.bind(api), { yaml: BASE_V1 });
    expect(info).to.include({ name: 'base', version: '1', units: 1 });
    expect(info.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(info.createdAt).to.match(/^\d{4}-/);
    const stored = JSON.parse((await client.get(ks.config('base', '1')).string()) ?? 'null') as { name: string; units: unknown[] };
    expect(stored.name).to.equal('base');
    expect(stored.units).to.have.length(1);
    expect(await eventsOfType('bundle.pushed')).to.have.length(1);
    const got = await call(api.GetBundle.bind(api), { name: 'base', version: '' });
    expect(got.digest).to.equal(info.digest);
  });

  it('a bundle with command units needs admin: an operator is refused naming the role; the event names the certificate', async () => {
    const withCommand = `${BASE_V1}  - id: init\n    kind: command\n    run: touch /opt/app/.initialised\n`;
    const before = await dump();
    const err = await refused(call(api.PushBundle.bind(api), { yaml: withCommand }));
    expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(err.message).to.match(/PushBundle\(command units\) needs the admin role; you are olga \(operator\)/);
    expect(await dump()).to.deep.equal(before);

    await call(adminApi.PushBundle.bind(adminApi), { yaml: withCommand });
    await call(api.PushBundle.bind(api), { yaml: BASE_V1.replace('version: 1', 'version: 2') });
    const all = await client.getAll().prefix(ks.eventsPrefix()).strings();
    const actors = Object.entries(all).map(([k, v]) => decodeEvent(k, v)).filter((e) => e.type === 'bundle.pushed').map((e) => e.actor).sort();
    expect(actors).to.deep.equal(['user:admin', 'user:olga']);
    // Deleting it needs admin too.
    const del = await refused(call(api.DeleteBundle.bind(api), { name: 'base', version: '1' }));
    expect(del.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(del.message).to.match(/DeleteBundle\(command units\) needs the admin role/);
    await call(adminApi.DeleteBundle.bind(adminApi), { name: 'base', version: '1' });
  });

  it('refuses an invalid bundle listing every problem by path, storing nothing', async () => {
    const before = await dump();
    const err = await refused(call(api.PushBundle.bind(api), {
      yaml: 'name: base\nversion: 1\nunits:\n  - id: a\n    kind: file\n    mode: "99"\n  - id: a\n    kind: bogus\n',
    }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.message).to.match(/units\[0\]/);
    expect(err.message).to.match(/units\[1\]/);
    expect(err.message).to.match(/problems/);
    const yamlErr = await refused(call(api.PushBundle.bind(api), { yaml: 'name: [unclosed' }));
    expect(yamlErr.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(yamlErr.message).to.match(/not valid YAML/);
    expect(await dump()).to.deep.equal(before);
  });

  it('is idempotent for identical content and refuses a changed duplicate version', async () => {
    const first = await call(api.PushBundle.bind(api), { yaml: BASE_V1 });
    const afterFirst = await dump();
    // Same bundle, other key order and spelling: same compiled content, so OK and nothing written.
    const again = await call(api.PushBundle.bind(api), { yaml: `version: "1"\n${BASE_V1.replace('version: 1\n', '')}` });
    expect(again.digest).to.equal(first.digest);
    expect(await dump()).to.deep.equal(afterFirst);
    const err = await refused(call(api.PushBundle.bind(api), { yaml: BASE_V1.replace('hello', 'goodbye') }));
    expect(err.code).to.equal(grpc.status.ALREADY_EXISTS);
    expect(err.message).to.match(/bundle base@1 exists with different content; bump version/);
    expect(await dump()).to.deep.equal(afterFirst);
    await call(api.PushBundle.bind(api), { yaml: BASE_V1.replace('version: 1', 'version: 10').replace('hello', 'goodbye') });
    await call(api.PushBundle.bind(api), { yaml: BASE_V1.replace('version: 1', 'version: 9') });
    const list = await call(api.ListBundles.bind(api), { name: 'base' });
    expect(list.bundles.map((b) => b.version)).to.deep.equal(['1', '9', '10']);
    expect((await call(api.GetBundle.bind(api), { name: 'base', version: '' })).version).to.equal('10');
    const missing = await refused(call(api.GetBundle.bind(api), { name: 'base', version: '4' }));
    expect(missing.code).to.equal(grpc.status.NOT_FOUND);
    expect(missing.message).to.match(/stored versions: 1, 9, 10/);
  });

  it('refuses a bundle whose templates name a misspelt root or an unknown fact, listing unit and field, storing nothing', async () => {
    const before = await dump();
    const typo = BASE_V1.replace('{{ vars.greeting }}', '{{ var.greeting }}');
    const err = await refused(call(api.PushBundle.bind(api), { yaml: typo }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.message).to.match(/bundle base@1 refused, nothing stored \(1 template problem\): unit motd, field content: \{\{ var\.greeting \}\} names no template root; use \{\{ vars\.NAME \}\}/);
    const facts = `${BASE_V1}  - id: svc\n    kind: systemd\n    unit: app.service\n    content: "cores={{ facts.cpu.corez }} disk={{ facts.disks.0.sizeBytes }} {{ facts.disks.size }}"\n`;
    const factErr = await refused(call(api.PushBundle.bind(api), { yaml: facts }));
    expect(factErr.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(factErr.message).to.match(/2 template problems/);
    expect(factErr.message).to.match(/unit svc, field content: unknown fact facts\.cpu\.corez: facts\.cpu has no field corez/);
    expect(factErr.message).to.match(/unit svc, field content: unknown fact facts\.disks\.size: facts\.disks is a list/);
    expect(await dump()).to.deep.equal(before);
    // Other templating inside content (Prometheus, Go) is not ours and passes.
    await call(api.PushBundle.bind(api), { yaml: BASE_V1.replace('{{ vars.greeting }}', '{{ vars.greeting }} {{ $labels.instance }} {{ .Values.x }}') });
  });

  describe('groups', () => {
    const group = (over: Partial<Group> = {}): Group => ({ name: 'worker', bundle: 'base', version: '1', ...over });

    beforeEach(async () => {
      await call(api.PushBundle.bind(api), { yaml: BASE_V1 });
    });

    it('sets and reads a group with every field', async () => {
      const g = await call(api.SetGroup.bind(api), {
        group: group({
          variables: { greeting: 'hi' }, minSize: 2, verifySchedule: '0 3 * * *', repairPolicy: 'repair',
          autoCommission: [{ selector: 'rack=r1,facts.manufacturer=Dell' }],
        }),
      });
      expect(g.revision).to.match(/^\d+$/);
      const read = await call(api.GetGroup.bind(api), { name: 'worker' });
      expect(read).to.deep.include({ name: 'worker', bundle: 'base', version: '1', minSize: 2, verifySchedule: '0 3 * * *', repairPolicy: 'repair' });
      expect(read.variables).to.deep.equal({ greeting: 'hi' });
      expect(read.autoCommission).to.deep.equal([{ selector: 'rack=r1,facts.manufacturer=Dell' }]);
      expect((await call(api.ListGroups.bind(api), {})).groups.map((x) => x.name)).to.deep.equal(['worker']);
      expect(await eventsOfType('group.set')).to.have.length(1);
    });

    it('refuses a bad cron expression, an unknown bundle version and a stale revision, changing nothing', async () => {
      const set = await call(api.SetGroup.bind(api), { group: group() });
      const before = await dump();

      const cron = await refused(call(api.SetGroup.bind(api), { group: group({ verifySchedule: '61 * * * *' }) }));
      expect(cron.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(cron.message).to.match(/verifySchedule: "61 \* \* \* \*" is not a valid cron expression/);

      const unknown = await refused(call(api.SetGroup.bind(api), { group: group({ version: '7' }) }));
      expect(unknown.code).to.equal(grpc.status.NOT_FOUND);
      expect(unknown.message).to.match(/bundle base@7 not found \(stored versions of base: 1\)/);

      const policy = await refused(call(api.SetGroup.bind(api), { group: group({ repairPolicy: 'fix', autoCommission: [{ selector: 'a=(' }] }) }));
      expect(policy.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(policy.message).to.match(/2 problems/);

      // Someone else updates the group after we read it.
      await call(api.SetGroup.bind(api), { group: group({ minSize: 1 }), expectedRevision: set.revision });
      const mid = await dump();
      const stale = await refused(call(api.SetGroup.bind(api), { group: group({ minSize: 5 }), expectedRevision: set.revision }));
      expect(stale.code).to.equal(grpc.status.ABORTED);
      expect(stale.message).to.match(/group worker changed since you read it/);
      expect(await dump()).to.deep.equal(mid);
      expect(mid).to.not.deep.equal(before);
      const read = await call(api.GetGroup.bind(api), { name: 'worker' });
      expect(read.minSize).to.equal(1);
    });

    it('allowed paths: a group whose bundle writes outside them is refused naming unit and path; so is a push of a version of its bundle that does; nothing stored', async () => {
      const v2 = (path: string, extra = ''): string => `name: base\nversion: 2\nunits:\n  - { id: conf, kind: file, path: "${path}", content: x }\n${extra}`;
      // base@1 writes /etc/motd: outside /etc/myapp.
      const before = await dump();
      const outside = await refused(call(api.SetGroup.bind(api), { group: group({ allowedPaths: ['/etc/myapp', '/opt/myapp'] }) }));
      expect(outside.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(outside.message).to.equal('group worker: bundle base@1 refused: unit motd writes "/etc/motd", outside the allowed paths (/etc/myapp, /opt/myapp)');
      expect(await dump()).to.deep.equal(before);
      // A bad list: relative, "..", a template.
      for (const [bad, want] of [['etc', /must be absolute/], ['/etc/myapp/../shadow', /must not contain "\.\." segments/], ['/etc/{{ vars.x }}', /must not be a template/]] as const) {
        const e = await refused(call(api.SetGroup.bind(api), { group: group({ allowedPaths: [bad] }) }));
        expect(e.code, bad).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(e.message, bad).to.match(want);
      }
      // Normalised and inside: stored (sorted, duplicates gone), read back, said in the event.
      const saved = await call(api.SetGroup.bind(api), { group: group({ allowedPaths: ['/etc/motd', '/opt//myapp/', '/etc/motd'] }) });
      expect(saved.allowedPaths).to.deep.equal(['/etc/motd', '/opt/myapp']);
      expect((await call(api.GetGroup.bind(api), { name: 'worker' })).allowedPaths).to.deep.equal(['/etc/motd', '/opt/myapp']);
      expect((await eventsOfType('group.set')).at(-1)).to.match(/allowed paths \/etc\/motd, \/opt\/myapp$/);

      // A new version of the bundle the group uses: refused when a unit writes outside, by
      // segment (/opt/myapp2 is not /opt/myapp), a systemd unit file, or a template whose fixed
      // directory is outside.
      const mid = await dump();
      const rows: [string, string][] = [
        [v2('/opt/myapp2/x'), 'unit conf writes "/opt/myapp2/x"'],
        [v2('/opt/myapp/x', '  - { id: svc, kind: systemd, unit: myapp.service, content: "[Service]" }\n'), 'unit svc writes "/etc/systemd/system/myapp.service"'],
        [v2('/opt/myapp{{ vars.x }}/y', 'variables: { x: "" }\n'), 'unit conf writes "/opt/myapp{{ vars.x }}/y"'],
      ];
      for (const [yaml, want] of rows) {
        const e = await refused(call(api.PushBundle.bind(api), { yaml }));
        expect(e.code, want).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(e.message, want).to.equal(`bundle base@2 refused, nothing stored: group worker uses base and ${want}, outside the allowed paths (/etc/motd, /opt/myapp)`);
      }
      expect(await dump()).to.deep.equal(mid);
      // Inside (a template under an allowed directory; package and command units are not restricted): stored.
      const ok = await call(adminApi.PushBundle.bind(adminApi), {
        yaml: v2('/opt/myapp/{{ vars.x }}.conf', '  - { id: pkg, kind: package, name: chrony }\n  - { id: cmd, kind: command, run: "touch /var/x" }\nvariables: { x: a }\n'),
      });
      expect(ok.version).to.equal('2');
      // Another bundle, not used by a group with allowed paths: not restricted.
      expect((await call(api.PushBundle.bind(api), { yaml: 'name: other\nversion: 1\nunits:\n  - { id: f, kind: file, path: /etc/anything, content: x }\n' })).version).to.equal('1');
      // The list cleared: base@1 is fine again.
      expect((await call(api.SetGroup.bind(api), { group: group({ allowedPaths: [] }) })).allowedPaths).to.deep.equal([]);
    });

    it('refuses a dependency on a group that does not exist, naming it, and stores nothing; an empty list clears one (said in the event)', async () => {
      const before = await dump();
      const missing = await refused(call(api.SetGroup.bind(api), { group: group({ dependsOn: ['nosuchgroup'] }) }));
      expect(missing.code).to.equal(grpc.status.NOT_FOUND);
      expect(missing.message).to.match(/group worker: depends on group nosuchgroup, which does not exist/);
      expect(await dump()).to.deep.equal(before);
      const self = await refused(call(api.SetGroup.bind(api), { group: group({ dependsOn: ['worker'] }) }));
      expect(self.message).to.match(/cannot depend on itself/);

      await call(api.SetGroup.bind(api), { group: group({ name: 'control' }) });
      await call(api.SetGroup.bind(api), { group: group({ dependsOn: ['control'] }) });
      expect((await call(api.GetGroup.bind(api), { name: 'worker' })).dependsOn).to.deep.equal(['control']);
      await call(api.SetGroup.bind(api), { group: group({ dependsOn: [] }) });
      expect((await call(api.GetGroup.bind(api), { name: 'worker' })).dependsOn).to.deep.equal([]);
      const messages = await eventsOfType('group.set');
      expect(messages[messages.length - 1]).to.match(/dependency on control cleared/);
    });

    it('refuses a group that leaves a variable its bundle uses undefined, naming unit and field; accepts it once the group sets it', async () => {
      await call(api.PushBundle.bind(api), {
        yaml: 'name: web\nversion: 1\nunits:\n  - {id: conf, kind: file, path: /etc/web.conf, content: "listen {{ vars.listen }}\\n"}\n',
      });
      const before = await dump();
      const err = await refused(call(api.SetGroup.bind(api), { group: group({ name: 'web', bundle: 'web' }) }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(err.message).to.match(/group web: bundle web@1 uses variable that neither the bundle defines nor the group sets: listen \(unit conf, field content\); set it with --var/);
      expect(await dump()).to.deep.equal(before);
      await call(api.SetGroup.bind(api), { group: group({ name: 'web', bundle: 'web', variables: { listen: '8080' } }) });
      expect((await call(api.GetGroup.bind(api), { name: 'web' })).variables).to.deep.equal({ listen: '8080' });
    });

    it('globals: set merges (null removes), supply a bundle variable no group sets, are validated, and cannot be removed while a group needs one; events name the variables only', async () => {
      expect(await call(api.GetGlobals.bind(api), {})).to.deep.include({ variables: {}, revision: '0' });
      for (const [text, re] of [
        ['{not json', /global variables are not JSON/],
        ['[1]', /must be a JSON object/],
        ['{"9bad":"x","ok":{"a":1}}', /invalid global variables \(2 problems\): "9bad": variable names .*; ok: must be a string, number or boolean/],
      ] as const) {
        const before = await dump();
        const err = await refused(call(api.SetGlobals.bind(api), { variablesJson: text }));
        expect(err.code, text).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(err.message).to.match(re);
        expect(await dump(), 'nothing stored').to.deep.equal(before);
      }
      const g1 = await call(api.SetGlobals.bind(api), { variablesJson: '{"listen":8080,"dns":"10.0.0.53"}' });
      expect(g1.variables).to.deep.equal({ listen: '8080', dns: '10.0.0.53' });
      // A group of a bundle using {{ vars.listen }} needs no --var now: the global supplies it.
      await call(api.PushBundle.bind(api), { yaml: 'name: web\nversion: 1\nunits:\n  - {id: conf, kind: file, path: /etc/web.conf, content: "listen {{ vars.listen }}\\n"}\n' });
      await call(api.SetGroup.bind(api), { group: group({ name: 'web', bundle: 'web' }) });
      const before = await dump();
      const needed = await refused(call(api.SetGlobals.bind(api), { variablesJson: '{"listen":null}' }));
      expect(needed.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(needed.message).to.match(/group web \(bundle web@1\) would have no value for listen \(unit conf, field content\)/);
      expect(await dump()).to.deep.equal(before);
      const g2 = await call(api.SetGlobals.bind(api), { variablesJson: '{"dns":null,"listen":"9090"}' });
      expect(g2.variables).to.deep.equal({ listen: '9090' });
      expect((await call(api.GetGlobals.bind(api), {})).variables).to.deep.equal({ listen: '9090' });
      const messages = await eventsOfType('globals.set');
      expect(messages).to.deep.equal(['global variables changed: listen set, dns set', 'global variables changed: listen set, dns removed']);
      expect(messages.join(' ')).not.to.contain('10.0.0.53');
    });

    it('manager config: every setting with its default; set and reset by an admin, checked first (every problem, nothing stored), refused for an operator; event', async () => {
      const first = await call(api.GetManagerConfig.bind(api), {});
      expect(first.revision).to.equal('0');
      expect(first.settings.map((x) => [x.name, x.value, x.isSet])).to.deep.equal([['defaultBatch', 'all', false], ['repairPolicy', 'group', false], ['autoCommission', 'enabled', false],
        ['jobRetention', '500', false], ['jobRetentionAge', '720h', false], ['eventRetention', '10000', false], ['historyRetention', '500', false], ['historyRetentionAge', '168h', false]]);
      const before = await dump();
      const denied = await refused(call(api.SetManagerConfig.bind(api), { set: { repairPolicy: 'report' }, reset: [] }));
      expect(denied.code).to.equal(grpc.status.PERMISSION_DENIED);
      const bad = await refused(call(adminApi.SetManagerConfig.bind(adminApi), { set: { defaultBatch: '0', repairPolicy: 'sometimes', nosuch: 'x' }, reset: [] }));
      expect(bad.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(bad.message).to.match(/invalid manager config \(3 problems\): defaultBatch: must be all, .*; repairPolicy: must be group, report or repair; unknown setting "nosuch" \(settings: defaultBatch, repairPolicy, autoCommission, jobRetention, jobRetentionAge, eventRetention, historyRetention, historyRetentionAge\)/);
      expect(await dump(), 'nothing stored').to.deep.equal(before);
      const set = await call(adminApi.SetManagerConfig.bind(adminApi), { set: { defaultBatch: '25%', repairPolicy: 'report' }, reset: [] });
      expect(set.settings.map((x) => [x.name, x.value, x.defaultValue, x.isSet])).to.deep.equal([
        ['defaultBatch', '25%', 'all', true], ['repairPolicy', 'report', 'group', true], ['autoCommission', 'enabled', 'enabled', false],
        ['jobRetention', '500', '500', false], ['jobRetentionAge', '720h', '720h', false], ['eventRetention', '10000', '10000', false],
        ['historyRetention', '500', '500', false], ['historyRetentionAge', '168h', '168h', false],
      ]);
      const reset = await call(adminApi.SetManagerConfig.bind(adminApi), { set: {}, reset: ['repairPolicy'] });
      expect(reset.settings.map((x) => [x.name, x.value, x.isSet])).to.deep.equal([['defaultBatch', '25%', true], ['repairPolicy', 'group', false], ['autoCommission', 'enabled', false],
        ['jobRetention', '500', false], ['jobRetentionAge', '720h', false], ['eventRetention', '10000', false], ['historyRetention', '500', false], ['historyRetentionAge', '168h', false]]);
      expect(await eventsOfType('config.set')).to.deep.equal(['manager config: defaultBatch=25%, repairPolicy=report', 'manager config: repairPolicy reset to its default']);
    });

    async function putNode(id: string, state: string, extra: Record<string, unknown> = {}): Promise<void> {
      const now = new Date().toISOString();
      await client.put(ks.node(id)).value(JSON.stringify({
        id, state, stateChangedAt: now, reachable: true, labels: {}, maintenance: false, connected: false, createdAt: now, ...extra,
      }));
    }

    it('group delete: refused while nodes are in it (naming them) or a group depends on it; --force only when none is Commissioned or busy; event', async () => {
      await call(api.SetGroup.bind(api), { group: group() });
      await call(api.SetGroup.bind(api), { group: group({ name: 'edge', dependsOn: ['worker'] }) });
      await putNode('n1', 'Commissioned', { group: 'worker', appliedConfig: 'base@1' });
      await putNode('n2', 'Decommissioned', { group: 'worker' });
      const before = await dump();
      const dep = await refused(call(api.DeleteGroup.bind(api), { name: 'worker', force: true }));
      expect(dep.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(dep.message).to.match(/group worker is a dependency of group edge; clear it first \(clusterctl group set edge --depends-on ""\)/);
      await call(api.SetGroup.bind(api), { group: group({ name: 'edge', dependsOn: [] }) });
      const mid = await dump();
      const inUse = await refused(call(api.DeleteGroup.bind(api), { name: 'worker', force: false }));
      expect(inUse.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(inUse.message).to.match(/group worker has 2 nodes: n1 \(Commissioned\), n2 \(Decommissioned\); decommission them first, or --force/);
      const forced = await refused(call(api.DeleteGroup.bind(api), { name: 'worker', force: true }));
      expect(forced.message).to.match(/cannot be deleted even with --force: n1 \(Commissioned\) is not Decommissioned/);
      expect(await dump()).to.deep.equal(mid);
      expect(mid).to.not.deep.equal(before);

      await putNode('n1', 'Decommissioned', { group: 'worker' });
      const res = await call(api.DeleteGroup.bind(api), { name: 'worker', force: true });
      expect(res.nodes).to.deep.equal(['n1', 'n2']);
      expect(await client.get(ks.group('worker')).string()).to.equal(null);
      expect((await eventsOfType('group.deleted'))[0]).to.match(/group worker deleted \(was base@1\); forced with nodes n1 \(Decommissioned\), n2 \(Decommissioned\)/);
      // A group without nodes goes without --force.
      await call(api.DeleteGroup.bind(api), { name: 'edge', force: false });
      expect((await call(api.ListGroups.bind(api), {})).groups).to.deep.equal([]);
      const gone = await refused(call(api.DeleteGroup.bind(api), { name: 'edge', force: false }));
      expect(gone.code).to.equal(grpc.status.NOT_FOUND);
    });

    it('bundle delete: refused while a group runs it or a node applied it (saying which); then deleted with its event, and its file becomes removable', async () => {
      const files = new FileStore({ client, keyspace: ks, events: new EventLog({ client, keyspace: ks, clock: systemClock, logger, actor: 'test' }), clock: systemClock });
      await files.upload('motd.txt', Buffer.from('one\n'));
      await call(api.PushBundle.bind(api), { yaml: 'name: m\nversion: 1\nunits:\n  - {id: motd, kind: file, path: /etc/motd, source: motd.txt}\n' });
      await call(api.SetGroup.bind(api), { group: group({ bundle: 'm' }) });
      await putNode('n1', 'Commissioned', { group: 'other', appliedConfig: 'm@1' });
      // A newer upload: m@1 keeps edition "one".
      await files.upload('motd.txt', Buffer.from('two\n'), { overwrite: true });
      const before = await dump();
      const inUse = await refused(call(api.DeleteBundle.bind(api), { name: 'm', version: '1' }));
      expect(inUse.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(inUse.message).to.match(/bundle m@1 is in use: group worker; node n1 \(applied\); move groups/);
      const noVersion = await refused(call(api.DeleteBundle.bind(api), { name: 'm', version: '' }));
      expect(noVersion.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(await dump()).to.deep.equal(before);
      await expectFileRefused();

      await call(api.SetGroup.bind(api), { group: group() });
      await putNode('n1', 'Decommissioned', { group: 'other' });
      const res = await call(api.DeleteBundle.bind(api), { name: 'm', version: '1' });
      expect(res.bundle?.version).to.equal('1');
      expect(res.prunedEditions).to.have.length(1);
      expect(res.prunedEditions[0]).to.match(/^motd\.txt edition [0-9a-f]{12}$/);
      expect(await client.get(ks.config('m', '1')).string()).to.equal(null);
      expect(await client.get(ks.configInfo('m', '1')).string()).to.equal(null);
      expect((await eventsOfType('bundle.deleted'))[0]).to.match(/^bundle m@1 deleted \(sha256:/);
      expect((await files.require('motd.txt')).editions.map((e) => e.current)).to.deep.equal([true]);
      await files.delete('motd.txt');
      expect(Object.keys(await client.getAll().prefix(ks.fileEditionsPrefix()).strings())).to.deep.equal([]);

      async function expectFileRefused(): Promise<void> {
        try {
          await files.delete('motd.txt');
        } catch (err) {
          expect((err as Error).message).to.match(/file motd\.txt is used by bundle m@1; .*clusterctl bundle delete/);
          return;
        }
        throw new Error('expected the file delete to be refused');
      }
    });

    it('unknown group → NOT_FOUND with a hint', async () => {
      const err = await refused(call(api.GetGroup.bind(api), { name: 'nope' }));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.message).to.match(/clusterctl group set nope/);
    });
  });
});

describe('config: pure checks (tables)', () => {
  it('orders versions numerically', () => {
    const table: [string, string, number][] = [
      ['1', '2', -1], ['10', '9', 1], ['1.10.0', '1.9.2', 1], ['1.0', '1.0', 0], ['1.0', '1.0.1', -1], ['2a', '2b', -1],
    ];
    for (const [a, b, want] of table) expect(compareVersions(a, b), `${a} vs ${b}`).to.equal(want);
  });

  it('validates group input', () => {
    const ok = { name: 'w', bundle: 'b', version: '1' };
    const table: [Record<string, unknown>, RegExp | undefined][] = [
      [{}, undefined],
      [{ verifySchedule: '* * * * * *' }, undefined],
      [{ verifySchedule: 'every day' }, /verifySchedule/],
      [{ repairPolicy: 'repair' }, undefined],
      [{ repairPolicy: 'maybe' }, /repairPolicy/],
      [{ minSize: -1 }, /minSize/],
      [{ variables: { '1x': 'a' } }, /variables\.1x/],
      [{ autoCommission: [{ selector: '' }] }, /would match every node/],
      [{ autoCommission: [{ selector: 'facts.cpuCores=16' }] }, undefined],
      [{ name: 'bad name' }, /name:/],
      [{ version: '' }, /version: is required/],
    ];
    for (const [over, want] of table) {
      const run = (): unknown => checkGroup({ ...ok, ...over });
      if (want) expect(run, JSON.stringify(over)).to.throw(want);
      else expect(run, JSON.stringify(over)).to.not.throw();
    }
    expect(checkGroup(ok).repairPolicy).to.equal('report');
  });
});
