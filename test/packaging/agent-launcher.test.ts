/**
 * The packaged launcher (/usr/bin/cluster-agent, packaging/bin/cluster-agent) gives Node the
 * flags that keep an idle agent small (bench/README.md, agent-cost). Run for real with `sh`,
 * its /usr paths pointed at this machine's node and at a probe script or the built agent: the
 * flags must reach V8 and take effect (the young generation stays capped), the operator's
 * CLUSTER_AGENT_NODE_FLAGS must replace them, its glibc malloc settings must reach node unless the
 * environment sets them, and the agent must start under them without a warning.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_LAUNCHER, AGENT_NODE_FLAGS_VAR, BIN, packagedAgentEnv, packagedAgentNodeFlags, run } from '../helpers';

/** Allocates short-lived garbage, then reports its flags and the size V8 gave the young generation. */
const PROBE = `
const v8 = require('node:v8');
let keep = [];
for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = []; }
const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
const malloc = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_')));
process.stdout.write(JSON.stringify({ execArgv: process.execArgv, youngBytes: young.space_size, args: process.argv.slice(2), malloc, wasm: typeof WebAssembly }));
`;

interface ProbeOutput { execArgv: string[]; youngBytes: number; args: string[]; malloc: Record<string, string>; wasm: string }

describe('packaging: the agent launcher and its Node flags', function () {
  this.timeout(60_000);
  let dir: string;
  let launcher: (script: string) => string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-launcher-'));
    writeFileSync(join(dir, 'probe.js'), PROBE);
    const text = readFileSync(AGENT_LAUNCHER, 'utf8');
    expect(text).to.include('exec /usr/bin/node ').and.to.include('/usr/lib/cluster/agent.js');
    launcher = (script) => {
      const path = join(dir, `launcher-${script.replace(/\W/g, '_')}`);
      writeFileSync(path, text.replace('/usr/bin/node', process.execPath).replace('/usr/lib/cluster/agent.js', script));
      return path;
    };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function probe(env: NodeJS.ProcessEnv): Promise<ProbeOutput> {
    // The variable must be absent, not merely empty, for the default to apply.
    const base = { ...process.env };
    for (const k of Object.keys(base)) if (k === AGENT_NODE_FLAGS_VAR || k.startsWith('MALLOC_')) delete base[k];
    const r = await run('/bin/sh', [launcher(join(dir, 'probe.js')), '--node-id', 'a b'], { env: { ...base, ...env } });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal('');
    return JSON.parse(r.stdout) as ProbeOutput;
  }

  it('by default node gets the packaged flags: the young generation stays within 2 MiB, and there is no WebAssembly', async () => {
    const flags = packagedAgentNodeFlags();
    expect(flags).to.include.members(['--max-semi-space-size=1', '--jitless', '--no-expose-wasm']);
    const p = await probe({});
    expect(p.execArgv).to.deep.equal(flags);
    expect(p.args).to.deep.equal(['--node-id', 'a b']);
    expect(p.youngBytes).to.be.at.most(2 * 1024 * 1024);
    // --jitless: `long` (loaded at start by protobufjs) then uses JavaScript, not a WebAssembly module (~1.2 MiB).
    expect(p.wasm).to.equal('undefined');
  });

  it(`${AGENT_NODE_FLAGS_VAR} replaces them; empty means Node's defaults, under which the same work grows the young generation`, async () => {
    const empty = await probe({ [AGENT_NODE_FLAGS_VAR]: '' });
    expect(empty.execArgv).to.deep.equal([]);
    expect(empty.youngBytes).to.be.above(2 * 1024 * 1024);
    expect(empty.wasm).to.equal('object');
    const own = await probe({ [AGENT_NODE_FLAGS_VAR]: '--max-old-space-size=200 --max-semi-space-size=2' });
    expect(own.execArgv).to.deep.equal(['--max-old-space-size=200', '--max-semi-space-size=2']);
  });

  it('exports fixed glibc malloc thresholds to node; values from the environment (/etc/sysconfig) win', async () => {
    const env = packagedAgentEnv();
    expect(env).to.deep.equal({ MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '65536' });
    expect((await probe({})).malloc).to.deep.equal(env);
    expect((await probe({ MALLOC_TRIM_THRESHOLD_: '1048576' })).malloc).to.deep.equal({ ...env, MALLOC_TRIM_THRESHOLD_: '1048576' });
  });

  it('the built agent starts under the packaged flags without a warning', async () => {
    const r = await run('/bin/sh', [launcher(BIN.agent), '--version']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^cluster-agent \S+\n$/);
    expect(r.stderr).to.equal('');
  });
});
