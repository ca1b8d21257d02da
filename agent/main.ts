#!/usr/bin/env node
/**
 * cluster-agent: the composition root (STYLE.md). Reads the options, builds the etcd client
 * and the logger, wires one Agent, and turns SIGTERM/SIGINT into a graceful stop with a grace
 * time, after which it exits anyway (systemd would SIGKILL it later otherwise).
 *
 * The applied record in --state-dir is the same file `cluster-agent apply` writes
 * (agent/applied-record.ts); at start the daemon re-verifies it ("reload") with the same unit
 * context its commands use, and reports drift to the coordinator.
 *
 * `cluster-agent apply|verify|remove|plan ...` are local config-unit commands, served by
 * agent/local-cli.ts (loaded only for them, so the daemon does not pay for it).
 */
import { mkdirSync } from 'node:fs';
import { Agent } from './agent';
import { reverifyStore } from './applied-reload';
import { appliedState, FileAppliedStore } from './applied-store';
import { CommandExecutor } from './command-executor';
import { systemFactsProvider } from './facts-collector';
import { createUnitContext } from './unit-context';
import { createHandlerRegistry } from './units/handlers';
import { agentHelp, compileAgentConfig, parseAgentOptions } from './options';
import { createEtcdClient } from '../shared/etcd';
import { ClusterError, errorMessage } from '../shared/errors';
import { createLogger } from '../shared/logger';
import { VERSION } from '../shared/version';

const LOCAL_SUBCOMMANDS = new Set(['apply', 'verify', 'remove', 'plan']);

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage. */
function usageError(message: string): number {
  process.stderr.write(`cluster-agent: ${message}\n`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length > 0 && LOCAL_SUBCOMMANDS.has(argv[0])) {
    const localCli: { runLocalCli(args: string[]): Promise<number> } = await import('./local-cli');
    return localCli.runLocalCli(argv);
  }
  if (argv.includes('--version')) {
    process.stdout.write(`cluster-agent ${VERSION}\n`);
    return 0;
  }

  let parsed: ReturnType<typeof parseAgentOptions>;
  try {
    parsed = parseAgentOptions(argv);
  } catch (err) {
    return usageError(errorMessage(err));
  }
  if (parsed.help) {
    process.stdout.write(agentHelp());
    return 0;
  }
  const o = compileAgentConfig(parsed.values);
  const logger = createLogger({ level: o.logLevel, fields: { component: 'agent' } });

  let agent: Agent;
  let etcd: ReturnType<typeof createEtcdClient>;
  // Not read yet: bad input must change nothing, and reading may convert an old-format record.
  const applied = new FileAppliedStore(o.stateDir, logger);
  const handlers = createHandlerRegistry();
  const unitContext = createUnitContext({
    root: o.root, logger, systemdBus: o.systemdBus, systemdUnitDir: o.systemdUnitDir, packageBackend: o.packageBackend,
    systemdCallTimeoutMs: o.work.systemdCallTimeoutMs, systemdJobTimeoutMs: o.work.systemdJobTimeoutMs,
    packageCommandTimeoutMs: o.work.packageCommandTimeoutMs,
  });
  try {
    etcd = createEtcdClient({ endpoints: o.etcd });
    agent = new Agent(
      o,
      {
        etcd, logger,
        applied: () => appliedState(applied),
        commandHandler: new CommandExecutor({
          handlers, context: unitContext, applied, logger,
          execTimeoutMs: o.work.execTimeoutMs,
          facts: () => systemFactsProvider({ hostname: agent.identity.hostname, logger, probeTimeoutMs: o.work.factsProbeTimeoutMs })(),
          onAppliedChanged: () => { agent.appliedChanged().catch(() => undefined); },
          onConverged: () => agent.converged(),
        }),
        reverify: (signal) => reverifyStore(applied, unitContext, { handlers, signal }),
      },
    );
  } catch (err) {
    if (err instanceof ClusterError) return usageError(err.message);
    throw err;
  }

  // After validation, so bad input changes nothing on disk.
  try {
    // 0700: the applied record may name secrets' paths and digests.
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    etcd.close();
    process.stderr.write(`cluster-agent: cannot create --state-dir ${o.stateDir}: ${errorMessage(err)}\n`);
    return 1;
  }
  // The Hello carries the applied digest: read the record before connecting. A record that
  // cannot be used is logged and reported as drift ("re-apply needed"), not fatal.
  await applied.refresh();

  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await agent.start();
  const signal = await stopped;

  const graceMs = o.shutdownGraceMs;
  logger.info('shutting down', { signal, graceMs });
  const force = setTimeout(() => {
    logger.error('shutdown grace time exceeded; exiting', { graceMs });
    process.exit(1);
  }, graceMs);
  force.unref();
  // A second signal means "now".
  const again = (): void => process.exit(1);
  process.once('SIGTERM', again);
  process.once('SIGINT', again);

  await agent.stop(Math.max(0, graceMs - 1000));
  unitContext.close();
  etcd.close();
  clearTimeout(force);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster-agent: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
