/** --cpu-profile WHEN:SECONDS:FILE: parsed with a usable refusal; a profile starts at its moment only and is written. */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../shared';
import { armCpuProfile, markCpuProfile, parseCpuProfileSpec } from '../../coordinator/cpu-profile';
import { parseCoordinatorArgs } from '../../coordinator/options';

describe('coordinator: --cpu-profile', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'cpu-profile-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses WHEN:SECONDS:FILE and refuses anything else, naming the form', () => {
    expect(parseCpuProfileSpec('start-job:30:/tmp/a:b.cpuprofile')).to.deep.equal({ from: 'start-job', durationMs: 30_000, file: '/tmp/a:b.cpuprofile' });
    for (const bad of ['leader', 'leader:0:/tmp/x', 'boot:5:/tmp/x', 'leader:5:', 'leader:x:/tmp/x']) {
      expect(() => parseCpuProfileSpec(bad), bad).to.throw(/use WHEN:SECONDS:FILE with WHEN leader or start-job/);
    }
    // The parser checks only that the etcd client TLS files exist.
    for (const f of ['ca.crt', 'etcd-coordinator.crt', 'etcd-coordinator.key']) writeFileSync(join(dir, f), '');
    const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', '--pki-dir', dir, '--cpu-profile', 'leader:20:/tmp/l.cpuprofile'], {});
    expect(parsed.kind === 'run' ? parsed.config.cpuProfile : undefined).to.deep.equal({ from: 'leader', durationMs: 20_000, file: '/tmp/l.cpuprofile' });
    const none = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', '--pki-dir', dir], {});
    expect(none.kind === 'run' ? none.config.cpuProfile : 'not run').to.equal(undefined);
  });

  it('starts at its own moment only, once, and writes a V8 profile after the duration', async () => {
    const file = join(dir, 'leader.cpuprofile');
    armCpuProfile({ from: 'leader', durationMs: 1000, file }, createLogger({ level: 'silent' }));
    markCpuProfile('start-job');
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(file), 'a profile started by another moment').to.equal(false);
    markCpuProfile('leader');
    const deadline = Date.now() + 20_000;
    while (!existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: unknown[]; samples: number[]; startTime: number; endTime: number };
    expect(profile.nodes.length).to.be.greaterThan(0);
    expect(profile.endTime).to.be.greaterThan(profile.startTime);
    // Disarmed after the first: a second moment writes nothing new.
    rmSync(file);
    markCpuProfile('leader');
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(file)).to.equal(false);
  });
});
