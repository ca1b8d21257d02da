/**
 * clusterctl exec end to end: the built CLI as a process, a real coordinator process, three
 * real agent processes with sandbox roots (the command runs with the node root as its working
 * directory), real etcd. Output is prefixed per node, a failing node makes the exit code
 * non-zero with per-node exit codes in the summary, output and exit codes are kept in the job's
 * records in etcd, lifecycle states are untouched; a timeout kills the command on the agent.
 * The line splitter is pure and tested by table.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { delay, waitFor } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { PrefixedOutput } from '../../cli/commands/exec';
import { decodeJob, decodeJobNode } from '../../coordinator/jobs/job-record';
import { Keyspace } from '../../shared';

describe('exec: prefixed output lines (table)', () => {
  const rows: [string, [string, string][], string[]][] = [
    ['whole lines', [['n1', 'a\nb\n']], ['[n1] a', '[n1] b']],
    ['a partial line waits for its end', [['n1', 'a\nb'], ['n1', 'a\nbc\n']], ['[n1] a', '[n1] bc']],
    ['nodes are independent', [['n1', 'x'], ['n2', 'y\n'], ['n1', 'x1\n']], ['[n2] y', '[n1] x1']],
    ['bounded output that lost its middle says so', [['n1', 'aaaa\n'], ['n1', 'a\n']], ['[n1] aaaa', '[n1] [... output truncated ...]']],
  ];
  for (const [what, pushes, out] of rows) {
    it(what, () => {
      const p = new PrefixedOutput();
      const lines = pushes.flatMap(([n, o]) => p.push(n, o));
      expect(lines).to.deep.equal(out);
    });
  }
  it('flush prints the unterminated last line once', () => {
    const p = new PrefixedOutput();
    expect(p.push('n1', 'done')).to.deep.equal([]);
    expect(p.flush('n1')).to.deep.equal(['[n1] done']);
    expect(p.flush('n1')).to.deep.equal([]);
  });
});

describe('exec: clusterctl exec on real agents', function () {
  this.timeout(240_000);
  const suite = e2eSuite('exec');

  it('runs on 3 agents in parallel batches, prefixes output, reports per-node exit codes, fails overall when one node fails; a timeout kills the command', async () => {
    const cluster = await suite.startCluster({ name: 'exec' });
    const roots = new Map<string, string>();
    for (const id of ['n1', 'n2', 'n3']) {
      const root = join(cluster.baseDir, 'roots', id);
      mkdirSync(root, { recursive: true });
      roots.set(id, root);
      await cluster.startAgent(id, { extraArgs: ['--root', root] });
    }
    await cluster.waitForNodes('3 connected Discovered nodes', (ns) => ns.filter((n) => n.state === 'Discovered' && n.connected === true).length === 3, 60_000);
    const client = suite.etcd.client();
    const ks = new Keyspace();

    // n2 fails with exit code 3; every node prints two lines naming its root.
    const script = 'echo "hello from $(basename "$PWD")"; echo second line; [ "$(basename "$PWD")" != n2 ] || exit 3';
    let r = await cluster.ctl(['exec', '--nodes', 'n1,n2,n3', '--concurrency', '2', '--', 'sh', '-c', script], 120_000);
    const context = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, context).to.equal(1);
    const lines = r.stdout.trim().split('\n').sort();
    expect(lines, context).to.deep.equal([
      '[n1] hello from n1', '[n1] second line', '[n2] hello from n2', '[n2] second line', '[n3] hello from n3', '[n3] second line',
    ]);
    expect(r.stderr, context).to.match(/^n1\s+succeeded\s+0\s*$/m);
    expect(r.stderr, context).to.match(/^n2\s+failed\s+3\s+exit code 3\s*$/m);
    expect(r.stderr, context).to.match(/^n3\s+succeeded\s+0\s*$/m);
    expect(r.stderr, context).to.match(/exec failed on 1 of 3 node\(s\): n2/);

    // Recorded like any job: kind exec, batches of 2, output and exit code per node.
    const jobId = /job (j-[0-9]+-[0-9a-f]+)/.exec(r.stderr)?.[1] ?? '';
    expect(jobId, context).to.not.equal('');
    const jobText = await client.get(ks.job(jobId)).string();
    const job = decodeJob(ks.job(jobId), jobText ?? '');
    expect(job.kind).to.equal('exec');
    expect(job.state).to.equal('Succeeded');
    expect(job.batches).to.deep.equal([['n1', 'n2'], ['n3']]);
    const n2 = decodeJobNode(ks.jobNode(jobId, 'n2'), (await client.get(ks.jobNode(jobId, 'n2')).string()) ?? '');
    expect(n2).to.deep.include({ state: 'failed', exitCode: 3 });
    expect(n2.output).to.equal('hello from n2\nsecond line\n');
    // exec moves no lifecycle state and sets no lastError; claims are released.
    const nodes = await cluster.nodes();
    for (const n of nodes) {
      expect(n.state, n.id).to.equal('Discovered');
      expect(n.lastError ?? '', n.id).to.equal('');
      expect(n.currentJob ?? '', n.id).to.equal('');
    }

    // Timeout: the agent kills the command; the node fails with the reason and no exit code.
    const root1 = roots.get('n1') ?? '';
    const t0 = Date.now();
    r = await cluster.ctl(['exec', '--nodes', 'n1', '--command-timeout', '2s', '--', 'sh', '-c', 'echo $$ > pid; echo started; sleep 30; touch finished'], 120_000);
    const took = Date.now() - t0;
    const context2 = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, context2).to.equal(1);
    expect(r.stdout, context2).to.equal('[n1] started\n');
    expect(r.stderr, context2).to.match(/^n1\s+failed\s+-\s+.*timed out after 2000 ms/m);
    expect(took, context2).to.be.lessThan(25_000);
    const pid = Number(readFileSync(join(root1, 'pid'), 'utf8').trim());
    await waitFor('the timed-out shell is gone', () => {
      try {
        process.kill(pid, 0);
        return undefined;
      } catch {
        return true;
      }
    }, { timeoutMs: 10_000 });
    await delay(2000);
    expect(existsSync(join(root1, 'finished'))).to.equal(false);

    // Bad input: no command, both target kinds, unknown node: one line, exit 1.
    r = await cluster.ctl(['exec', '--nodes', 'n1']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.match(/^error: exec needs a command after --/);
    r = await cluster.ctl(['exec', '--nodes', 'n1', '-l', 'a=b', '--', 'true']);
    expect(r.stderr.trim()).to.match(/^error: name the nodes with exactly one of/);
    r = await cluster.ctl(['exec', '--nodes', 'ghost', '--', 'true']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.match(/^error: node ghost not found/);
  });
});
