/**
 * Retention as a manager setting (Contiv's `clusterctl config`: "default batch, retention,
 * repair policy"): `config get` shows the jobs, events and history kept, with the answering
 * coordinator's options as defaults; `config set` changes them for the whole cluster and the
 * leader's trims apply the stored values at their next pass. Checks by table; the rest through
 * the built clusterctl against a real coordinator and etcd.
 */
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { Coordinator } from '../../coordinator/coordinator';
import { newNodeRecord } from '../../coordinator';
import { isFinished, pendingNode, type JobRecord, type JobState } from '../../coordinator/jobs';
import { changeConfig, defaultOf, effectiveRetention, MANAGER_SETTINGS, type RetentionSettings } from '../../shared/manager-config';
import { createLogger, systemClock } from '../../shared';
import { clusterctl, testPki, useEtcd, waitFor, type RunResult, type TestPki } from '../helpers';

const logger = createLogger({ level: 'silent' });
const OPTIONS: RetentionSettings = { eventRetention: 10_000, jobRetention: 500, jobRetentionAgeMs: 720 * 3_600_000, historyRetention: 500, historyRetentionAgeMs: 168 * 3_600_000 };

describe('retention settings (table)', () => {
  const rows: [Record<string, string>, string | Partial<Record<string, string>>][] = [
    [{ jobRetention: '100' }, { jobRetention: '100' }],
    [{ jobRetention: ' 7 ' }, { jobRetention: '7' }],
    [{ jobRetention: '0' }, /jobRetention: must be a whole number from 1 to 1000000/.source],
    [{ eventRetention: '1000001' }, /eventRetention: must be a whole number/.source],
    [{ historyRetention: 'lots' }, /historyRetention: must be a whole number/.source],
    [{ jobRetentionAge: '72h' }, { jobRetentionAge: '72h' }],
    [{ jobRetentionAge: '4320m' }, { jobRetentionAge: '72h' }],
    [{ historyRetentionAge: '90m' }, { historyRetentionAge: '90m' }],
    [{ historyRetentionAge: '48' }, { historyRetentionAge: '48h' }],
    [{ jobRetentionAge: '30s' }, /jobRetentionAge: must be from 1m to 87600h/.source],
    [{ jobRetentionAge: '30d' }, /jobRetentionAge: must be a duration such as 90m, 72h or 720h/.source],
  ];
  for (const [set, want] of rows) {
    it(`${JSON.stringify(set)} → ${typeof want === 'string' ? `refused /${want}/` : JSON.stringify(want)}`, () => {
      if (typeof want === 'string') expect(() => changeConfig({ values: {} }, set, [])).to.throw(new RegExp(want));
      else expect(changeConfig({ values: {} }, set, []).values).to.deep.equal(want);
    });
  }

  it('unset, the coordinator\'s options apply and are the defaults shown; set, the stored values', () => {
    expect(effectiveRetention(undefined, OPTIONS)).to.deep.equal(OPTIONS);
    expect(effectiveRetention({ values: { jobRetention: '3', historyRetentionAge: '90m', defaultBatch: '2' } }, OPTIONS))
      .to.deep.equal({ ...OPTIONS, jobRetention: 3, historyRetentionAgeMs: 90 * 60_000 });
    const defaults = Object.fromEntries(MANAGER_SETTINGS.map((s) => [s.name, defaultOf(s, OPTIONS)]));
    expect(defaults).to.deep.include({ jobRetention: '500', jobRetentionAge: '720h', eventRetention: '10000', historyRetention: '500', historyRetentionAge: '168h', defaultBatch: 'all' });
  });
});

describe('retention settings: config set reaches the leader\'s trims (real coordinator, etcd, clusterctl)', function () {
  this.timeout(90_000);
  const env = useEtcd('retention-settings');
  let pki: TestPki;
  let coord: Coordinator | undefined;
  before(async () => { pki = await testPki(); });
  after(async () => { await coord?.stop({ graceMs: 200 }); coord = undefined; });

  function record(id: string, state: JobState): JobRecord {
    const now = systemClock.iso();
    return {
      id, kind: 'verify', state, targets: { nodeIds: ['n1'] }, nodeIds: ['n1'], variables: {}, strategy: 'all-at-once', batch: '1', maxFailures: 0, dryRun: false,
      force: false, batches: [['n1']], currentBatch: 0, message: '', createdAt: now, finishedAt: now, requestedBy: 'test', claimed: isFinished(state),
    };
  }

  async function seed(id: string): Promise<void> {
    const store = coord?.jobs.store;
    if (!store) throw new Error('no coordinator');
    await store.commit(record(id, 'Succeeded'), '0', { type: 'job.created', message: 'seed' });
    await store.putNode(id, { ...pendingNode('n1', 0), state: 'succeeded', output: 'ok' });
  }

  async function jobIds(): Promise<string[]> {
    const keys = await env.client.getAll().prefix(env.ks.jobsPrefix()).keys();
    return keys.map((k) => k.slice(env.ks.jobsPrefix().length)).filter((k) => !k.includes('/')).sort();
  }

  it('config get shows the options as defaults; config set jobRetention, eventRetention and historyRetention are applied by the next trims', async () => {
    coord = new Coordinator({
      etcd: env.client, keyspace: env.ks, logger, replicaId: 'r1', listen: '127.0.0.1:0', electionTtlMs: 3000,
      jobRetention: 50, eventRetention: 5000, pki: await pki.coordinatorPki(env.client, env.ks),
    });
    const c = coord;
    for (const id of ['j-1', 'j-2', 'j-3']) await seed(id);
    await c.start();
    await waitFor('leadership', () => c.isLeader(), { timeoutMs: 20_000 });
    const creds = { CLUSTERCTL_CREDENTIALS: pki.writeCredentialsFile(await pki.identity('admin'), [c.address]) };
    const ctl = async (args: string[], code = 0): Promise<RunResult> => {
      const r = await clusterctl(args, { env: creds });
      expect(r.code, `clusterctl ${args.join(' ')}: ${r.stderr}`).to.equal(code);
      return r;
    };
    type Setting = { name: string; value: string; default: string; set: boolean };
    const settings = async (): Promise<Record<string, Setting>> => {
      const doc = parseYaml((await ctl(['config', 'get', '-o', 'yaml'])).stdout) as { settings: Setting[] };
      return Object.fromEntries(doc.settings.map((s) => [s.name, s]));
    };
    const before = await settings();
    expect(before.jobRetention).to.deep.include({ value: '50', default: '50', set: false });
    expect(before.eventRetention).to.deep.include({ value: '5000', default: '5000', set: false });
    expect(before.jobRetentionAge).to.deep.include({ value: '720h', default: '720h', set: false });
    expect((await ctl(['config', 'get'])).stdout).to.match(/^historyRetention +500 +default /m);
    expect(await jobIds()).to.deep.equal(['j-1', 'j-2', 'j-3']);

    // Refused, every problem named, nothing stored.
    const refused = await ctl(['config', 'set', 'jobRetention=0', 'historyRetentionAge=1s'], 1);
    expect(refused.stderr).to.match(/2 problems\): jobRetention: must be a whole number.*historyRetentionAge: must be from 1m/);
    expect((await settings()).jobRetention.set).to.equal(false);

    // Jobs: the next finished job's trim keeps the newest 2.
    expect((await ctl(['config', 'set', 'jobRetention=2'])).stdout).to.match(/^jobRetention +2 +set /m);
    await seed('j-4');
    await waitFor('the trim under jobRetention=2', async () => JSON.stringify(await jobIds()) === JSON.stringify(['j-3', 'j-4']), { timeoutMs: 20_000 });
    // The trim's event follows its deletions.
    const trimEvents = async (): Promise<string> => Object.values(await env.client.getAll().prefix(env.ks.eventsPrefix()).strings())
      .map((v) => JSON.parse(v) as { type: string; message: string }).filter((e) => e.type === 'job.trimmed').map((e) => e.message).join('\n');
    await waitFor('the job.trimmed event', async () => /keeping the newest 2,/.test(await trimEvents()), { timeoutMs: 20_000 });
    await ctl(['config', 'set', 'eventRetention=3', 'historyRetention=1']);

    // Events: a trim keeps the newest 3 of those written before it (later ones may follow).
    const seqs = async (): Promise<number[]> => (await env.client.getAll().prefix(env.ks.eventsPrefix()).keys())
      .map((k) => env.ks.parseEvent(k)).filter((n): n is number => n !== undefined);
    const lastBefore = Math.max(...(await seqs()));
    expect(lastBefore).to.be.greaterThan(3);
    await c.events.trim();
    expect((await seqs()).filter((n) => n <= lastBefore)).to.have.length.at.most(3);

    // History: three changes of one node, one kept after the pass.
    for (const v of ['a', 'b', 'c']) {
      await c.nodes.mutate('n1', (cur) => ({ next: { ...(cur ?? newNodeRecord('n1', systemClock.iso())), labels: { v } }, event: { type: 'node.labels', message: v } }));
    }
    const historyOf = async (): Promise<number> => (await env.client.getAll().prefix(env.ks.historyPrefix()).keys()).filter((k) => env.ks.parseHistory(k)?.nodeId === 'n1').length;
    expect(await historyOf()).to.be.at.least(3);
    await c.historyRetention.trim();
    expect(await historyOf()).to.equal(1);

    // Reset: the options apply again.
    await ctl(['config', 'set', 'jobRetention=', 'eventRetention=', 'historyRetention=']);
    expect((await settings()).jobRetention).to.deep.include({ value: '50', set: false });
  });
});
