/**
 * Health-gated rolling upgrade with automatic rollback (issue 15 §2), on real processes: a
 * coordinator process, agent processes in their own systemd sandboxes, and a real listener per
 * node (a node HTTP server run by the node's user manager as `web.service`, on a free port of
 * its own: the sandboxes share the network namespace). Release 2 of the listener exits 4 s
 * after it starts on a machine that has a `v2-crashes` marker: it passes the probes right after
 * the apply and fails them during the soak, the case a soak exists for. Every version's command
 * unit appends the version to /opt/web/runs (one line per execution) and sleeps 8 s on a
 * machine with a `slow` marker, so a rollback can be caught mid-command.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { HealthProbe } from '../../generated/cluster/v1/HealthProbe';
import { describeJob } from '../../cli/commands/job-view';
import { nodeStates } from './lifecycle-api';
import type { CoordinatorHandle } from '../helpers';
import { requireNode, waitNodes } from './lifecycle-fixtures';
import { lifecycleSuite, type LifecycleSuite } from './lifecycle-suite';

const SERVER_JS = `
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const [dir, release] = process.argv.slice(2);
const port = Number(fs.readFileSync(path.join(dir, 'port'), 'utf8'));
http.createServer((req, res) => {
  res.statusCode = req.url === '/healthz' ? 200 : 404;
  res.end('release ' + release + '\\n');
}).listen(port, '127.0.0.1');
if (release === '2' && fs.existsSync(path.join(dir, 'v2-crashes'))) setTimeout(() => process.exit(1), 4000);
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Bundle `web` version N: a release file, the listener as a user service, and its probe (curl of /healthz saying "release N"). */
function webBundle(version: number, webDir: string): string {
  const dir = `${webDir}/{{ facts.hostname }}`;
  return `
name: web
version: "${version}"
units:
  - { id: web-dir, kind: directory, path: /opt/web, mode: "0755" }
  - id: release
    kind: file
    path: /opt/web/release
    content: "release=${version}\\n"
    mode: "0644"
  - id: runs
    kind: command
    run: 'echo ${version} >> "$NODE_ROOT/opt/web/runs"; if [ -f ${dir}/slow ]; then sleep 8; fi'
    timeout: 60s
  - id: web-svc
    kind: systemd
    unit: web.service
    content: |
      [Unit]
      Description=health-gate test listener (release ${version})
      [Service]
      ExecStart=${process.execPath} ${webDir}/server.js ${dir} ${version}
      [Install]
      WantedBy=default.target
    enabled: true
    state: running
verify:
  - id: healthz
    command: 'curl -fsS "http://127.0.0.1:$(cat ${dir}/port)/healthz" | grep -qx "release ${version}"'
    timeout: 5s
`;
}

const IDS = ['n1', 'n2', 'n3'];

/** Coordinators (the first leads), web@1 and web@2 pushed, group `web` on web@1, three nodes each with its own port, commissioned on web@1. */
async function commissioned(s: LifecycleSuite, coordinators = 1): Promise<{ api: ReturnType<LifecycleSuite['api']>; webDir: string; roots: Map<string, string>; replicas: CoordinatorHandle[] }> {
  const replicas = [await s.coordinator()];
  for (let i = 1; i < coordinators; i++) replicas.push(await s.coordinator({ waitLeader: false }));
  const api = s.api();
  const webDir = join(s.cluster().baseDir, 'web');
  mkdirSync(webDir, { recursive: true });
  writeFileSync(join(webDir, 'server.js'), SERVER_JS);
  for (const id of IDS) {
    mkdirSync(join(webDir, `host-${id}`), { recursive: true });
    writeFileSync(join(webDir, `host-${id}`, 'port'), String(await freePort()));
  }
  for (const v of [1, 2]) await api.pushBundle(webBundle(v, webDir));
  await api.setGroup({ name: 'web', bundle: 'web', version: '1' });
  const nodes = await s.nodes(IDS);
  await waitNodes(s.client, IDS);
  const c = await api.startJob({ kind: 'commission', nodeIds: IDS, group: 'web' });
  const d = await api.finished(c.id, 120_000);
  expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
  return { api, webDir, roots: new Map(nodes.map((n) => [n.nodeId, n.root])), replicas };
}

/** What the node's listener answers, asked from outside (the test process), not through the agent. */
async function served(webDir: string, id: string): Promise<string> {
  const port = readFileSync(join(webDir, `host-${id}`, 'port'), 'utf8').trim();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    return (await res.text()).trim();
  } catch {
    return 'no answer';
  }
}

function listenerProbe(webDir: string): HealthProbe {
  // Any HTTP answer will do (without -f curl exits 0 on a 404): the port is served.
  return { id: 'listener', command: `curl -sS -o /dev/null "http://127.0.0.1:$(cat ${webDir}/{{ facts.hostname }}/port)/"` };
}

describe('e2e lifecycle: health-gated rolling upgrade with automatic rollback (real processes, real listeners)', function () {
  this.timeout(300_000);
  const s = lifecycleSuite('lc-rollback');

  it('web@2 fails its probe during the soak on batch 2: the job stops, rolls back n2 then n1 to web@1 (files, service, records), n3 untouched, job RolledBack', async () => {
    const { api, webDir, roots } = await commissioned(s);
    writeFileSync(join(webDir, 'host-n2', 'v2-crashes'), '');
    const job = await api.startJob({
      kind: 'upgrade', nodeIds: IDS, group: 'web', bundle: 'web@2', strategy: 'rolling', batch: '1', maxFailures: 0,
      soakMs: 8000, probeIntervalMs: 1000, probes: [listenerProbe(webDir)],
    });
    expect(job.rollback, 'on-failure is the upgrade default').to.equal('on-failure');
    const d = await api.waitJob(job.id, 'to end', (x) => ['RolledBack', 'Failed', 'Succeeded', 'Cancelled'].includes(x.job?.state ?? ''), 200_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('RolledBack');
    expect(d.job?.message).to.match(/1 node\(s\) failed, more than --max-failures 0.*rolled back 2 node\(s\)/);

    const byId = new Map(d.nodes.map((n) => [n.nodeId, n]));
    expect(byId.get('n1')?.state).to.equal('succeeded');
    expect(byId.get('n2')?.state).to.equal('failed');
    expect(byId.get('n2')?.error).to.match(/health probe (healthz|listener) failed \d+ s into the soak/);
    expect(byId.get('n3')?.state).to.equal('skipped');
    for (const id of ['n1', 'n2']) {
      const n = byId.get(id);
      expect(n?.previousBundle, id).to.equal('web@1');
      expect(n?.previousState, id).to.equal('Commissioned');
      expect(n?.rollbackState, `${id}: ${n?.rollbackError ?? ''}`).to.equal('succeeded');
    }
    expect(byId.get('n3')?.rollbackState, 'n3 never ran: nothing to roll back').to.equal('');
    // Newest first: n2 (batch 2) was rolled back before n1 (batch 1).
    expect((byId.get('n2')?.rollbackFinishedAt ?? '') <= (byId.get('n1')?.rollbackFinishedAt ?? ''), 'n2 before n1').to.equal(true);

    for (const id of IDS) {
      const rec = await requireNode(s.client, id);
      expect(rec.state, id).to.equal('Commissioned');
      expect(rec.appliedConfig, id).to.equal('web@1');
      expect(rec.appliedInputs?.bundle, id).to.equal('web@1');
      expect(rec.currentJob, `${id} released`).to.equal(undefined);
      expect(readFileSync(join(roots.get(id) ?? '', 'opt/web/release'), 'utf8'), `${id} release file on disk`).to.equal('release=1\n');
      expect(await served(webDir, id), `${id}: its listener serves release 1`).to.equal('release 1');
    }
    expect((await requireNode(s.client, 'n1')).lastError).to.match(/upgrade to web@2 rolled back to web@1 by job/);

    const events = await api.events({ jobId: job.id });
    const rollbackEvents = events.filter((e) => e.type === 'job.rollback');
    expect(rollbackEvents.find((e) => e.nodeId === '')?.message, 'the job\'s rollback event').to.match(/rolling back 2 node\(s\), newest first \(n2, n1\)/);
    const perNode = rollbackEvents.filter((e) => e.nodeId !== '').map((e) => `${e.nodeId}:${e.from}->${e.to}`);
    expect(perNode).to.deep.equal(['n2:Failed->Upgrading', 'n2:Upgrading->Commissioned', 'n1:Upgraded->Upgrading', 'n1:Upgrading->Commissioned']);
    expect(events.map((e) => e.type)).to.include('job.rolledback');

    // What `clusterctl job describe` prints of it: the gate, the policy, and the rollback per node in the order it ran.
    const page = describeJob(await api.getJob(job.id), Date.now());
    if (process.env.ROLLBACK_DESCRIBE_OUT) writeFileSync(process.env.ROLLBACK_DESCRIBE_OUT, page);
    expect(page).to.match(/^State: +RolledBack \(1 node\(s\) failed/m);
    expect(page).to.match(/^Health gate: +soak 8s, probes every 1s: bundle verify probes \+ command "curl/m);
    expect(page).to.match(/^Rollback: +on-failure$/m);
    expect(page).to.match(/^Rolled back \(newest first\):\n +NODE +BACK TO +STATE +FINISHED +ERROR\n +n2 +web@1 \(Commissioned\) +succeeded .*\n +n1 +web@1 \(Commissioned\) +succeeded/m);
  });

  it('web@2 that keeps passing its probes through the soak goes through: every node Upgraded on web@2, serving release 2, job Succeeded', async () => {
    const { api, webDir, roots } = await commissioned(s);
    const job = await api.startJob({
      kind: 'upgrade', nodeIds: IDS, group: 'web', bundle: 'web@2', strategy: 'rolling', batch: '2', maxFailures: 0,
      soakMs: 3000, probeIntervalMs: 1000, probes: [listenerProbe(webDir)],
    });
    const d = await api.finished(job.id, 200_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
    expect(d.job?.soakMs).to.equal(3000);
    for (const id of IDS) {
      const rec = await requireNode(s.client, id);
      expect(rec.state, id).to.equal('Upgraded');
      expect(rec.appliedConfig, id).to.equal('web@2');
      expect(readFileSync(join(roots.get(id) ?? '', 'opt/web/release'), 'utf8')).to.equal('release=2\n');
      expect(await served(webDir, id), id).to.equal('release 2');
      expect(d.nodes.find((n) => n.nodeId === id)?.rollbackState, id).to.equal('');
    }
    expect(existsSync(join(webDir, 'host-n2', 'v2-crashes'))).to.equal(false);
  });

  it('a leader failover during the rollback: the new leader resumes it (n1\'s rollback command runs once), the job ends RolledBack', async () => {
    const { webDir, roots, replicas } = await commissioned(s, 2);
    const [c1, c2] = replicas;
    const api2 = s.api(c2.address);
    writeFileSync(join(webDir, 'host-n2', 'v2-crashes'), '');
    const job = await api2.startJob({
      kind: 'upgrade', nodeIds: IDS, group: 'web', bundle: 'web@2', strategy: 'rolling', batch: '1', maxFailures: 0,
      soakMs: 6000, probeIntervalMs: 1000,
    });
    // n1 upgraded and soaked: from now on its commands are slow, so its rollback can be caught running.
    await api2.waitJob(job.id, 'n1 succeeded', (d) => d.nodes[0]?.state === 'succeeded', 120_000);
    writeFileSync(join(webDir, 'host-n1', 'slow'), '');
    const n1Root = roots.get('n1') ?? '';
    const runs = (): string[] => (existsSync(join(n1Root, 'opt/web/runs')) ? readFileSync(join(n1Root, 'opt/web/runs'), 'utf8').split('\n').filter(Boolean) : []);
    const mid = await api2.waitJob(job.id, 'n1\'s rollback running on its agent', (d) =>
      d.job?.state === 'RollingBack' && d.nodes[0]?.rollbackState === 'running' && runs().length === 3, 120_000);
    expect(mid.nodes[1]?.rollbackState, 'n2 (newest) went first').to.equal('succeeded');

    await c1.kill();
    await c2.proc.waitForLog(/"msg":"became leader"/, 30_000);
    const d = await api2.waitJob(job.id, 'to end', (x) => ['RolledBack', 'Failed', 'Succeeded', 'Cancelled'].includes(x.job?.state ?? ''), 120_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('RolledBack');
    expect(runs(), 'n1: commission, upgrade, one rollback (not re-run by the new leader)').to.deep.equal(['1', '2', '1']);
    for (const id of IDS) {
      const rec = await requireNode(s.client, id);
      expect(rec.state, id).to.equal('Commissioned');
      expect(rec.appliedConfig, id).to.equal('web@1');
      expect(rec.currentJob, id).to.equal(undefined);
      expect(await served(webDir, id), id).to.equal('release 1');
    }
  });
});
