/**
 * scripts/dev-cluster answers --help and refuses bad flags or a second running cluster before
 * it installs or rebuilds anything (it used to take 11 s for --help and 69 s, plus a rebuild of
 * dist/ under the running cluster, to refuse).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, run } from '../helpers';

const SCRIPT = join(REPO_ROOT, 'scripts', 'dev-cluster');

describe('scripts/dev-cluster: checks first', function () {
  this.timeout(30_000);
  let dir: string;
  let fake: ChildProcess | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dev-cluster-'));
  });
  after(() => {
    fake?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('--help within 3 s, without ensure-deps or a build', async () => {
    const start = Date.now();
    const r = await run(SCRIPT, ['--help'], { env: { DEV_CLUSTER_DIR: dir } });
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^Usage: scripts\/dev-cluster/);
    expect(r.stderr).to.not.include('ensure-deps');
    expect(Date.now() - start).to.be.lessThan(3000);
  });

  it('a bad flag is refused before ensure-deps runs', async () => {
    const r = await run(SCRIPT, ['--nodes', 'many'], { env: { DEV_CLUSTER_DIR: dir } });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.not.include('ensure-deps');
  });

  it('a second dev cluster is refused at once, naming the running one', async () => {
    // A process whose command line says dev-cluster stands for the running supervisor.
    const proc = spawn('bash', ['-c', 'exec -a dev-cluster-supervisor sleep 30'], { stdio: 'ignore' });
    fake = proc;
    await new Promise((res) => setTimeout(res, 200));
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ supervisorPid: proc.pid, children: [] }));
    const start = Date.now();
    const r = await run(SCRIPT, ['--once'], { env: { DEV_CLUSTER_DIR: dir } });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(`a dev cluster is already running (pid ${proc.pid})`);
    expect(r.stderr).to.not.include('ensure-deps');
    expect(Date.now() - start).to.be.lessThan(3000);
  });
});
