/** agent/options.ts: the parsed flags compile into one AgentConfig, durations in ms, every default from one place. */
import { expect } from 'chai';
import { AGENT_DEFAULTS, compileAgentConfig, parseAgentOptions } from '../../agent/options';
import { DEFAULT_PREFIX } from '../../shared/keyspace';

describe('agent options → AgentConfig', () => {
  it('defaults: prefix from the keyspace, durations in ms, link and work timeouts from AGENT_DEFAULTS', () => {
    const c = compileAgentConfig(parseAgentOptions(['--etcd', '127.0.0.1:2379'], {}).values);
    expect(c).to.deep.include({
      etcd: ['127.0.0.1:2379'], prefix: DEFAULT_PREFIX, leaseTtlMs: 45_000, factsIntervalMs: AGENT_DEFAULTS.factsIntervalMs,
      shutdownGraceMs: 10_000, stateDir: '/var/lib/cluster-agent', root: '/', systemdBus: 'system', packageBackend: 'auto', logLevel: 'info',
    });
    expect(AGENT_DEFAULTS.factsIntervalMs).to.equal(600_000);
    expect(c.link).to.deep.equal({ helloTimeoutMs: 10_000, backoff: { initialMs: 250, maxMs: 5_000 }, newLeaderJitterMs: 1000, resultCapacity: 256, standbyConnections: true });
    expect(c.work).to.deep.equal({ execTimeoutMs: 600_000, factsProbeTimeoutMs: 10_000, systemdCallTimeoutMs: 30_000, systemdJobTimeoutMs: 300_000, packageCommandTimeoutMs: 600_000 });
    expect(c).to.not.have.property('nodeId');
    expect(c).to.not.have.property('coordinator');
  });

  it('flags override, and durations are converted once', () => {
    const c = compileAgentConfig(parseAgentOptions([
      '--etcd', 'a:1,b:2', '--prefix', '/x/', '--lease-ttl', '7', '--facts-interval', '2m', '--shutdown-grace', '500ms',
      '--node-id', 'n1', '--coordinator', '127.0.0.1:7400', '--systemd-bus', 'session', '--log-level', 'debug',
    ], {}).values);
    expect(c).to.deep.include({
      etcd: ['a:1', 'b:2'], prefix: '/x/', leaseTtlMs: 7000, factsIntervalMs: 120_000, shutdownGraceMs: 500,
      nodeId: 'n1', coordinator: '127.0.0.1:7400', systemdBus: 'session', logLevel: 'debug',
    });
  });

  it('a compiled config does not share the defaults\' objects', () => {
    const c = compileAgentConfig(parseAgentOptions(['--etcd', 'a:1'], {}).values);
    c.link.backoff.maxMs = 1;
    c.work.execTimeoutMs = 1;
    expect(AGENT_DEFAULTS.link.backoff.maxMs).to.equal(5_000);
    expect(AGENT_DEFAULTS.work.execTimeoutMs).to.equal(600_000);
  });
});
