/**
 * The facts collection process (agent/facts-provider.ts says why it is a process): started by the
 * agent with an IPC channel, it reads one request, collects this machine's facts with
 * systeminformation (agent/facts-collector.ts), sends its log lines and then the facts over the
 * channel, and exits. It exits too when its parent goes away. Not a command for people: run by
 * hand it says so and exits with code 2.
 */
import type { LogFields, Logger } from '../shared/logger';
import { collectFacts } from './facts-collector';
import type { FactsChildMessage, FactsChildRequest } from './facts-provider';

function send(message: FactsChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Log lines go to the agent's logger, with the agent's fields (node id) added there. */
function ipcLogger(base: LogFields = {}): Logger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: LogFields): void => {
    void send({ kind: 'log', level, msg, fields: { ...base, ...fields } });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => ipcLogger({ ...base, ...fields }) };
}

function isRequest(m: unknown): m is FactsChildRequest {
  const r = m as Partial<FactsChildRequest> | null;
  return typeof r === 'object' && r !== null && typeof r.hostname === 'string' && typeof r.probeTimeoutMs === 'number' && r.probeTimeoutMs > 0;
}

function main(): void {
  if (!process.send) {
    process.stderr.write('facts-child: started by cluster-agent to collect hardware facts, not a command (a node\'s facts: clusterctl node describe NODE)\n');
    process.exit(2);
  }
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: unknown) => {
    if (!isRequest(m)) {
      process.stderr.write(`facts-child: not a request: ${JSON.stringify(m).slice(0, 200)}\n`);
      process.exit(2);
    }
    collectFacts({ hostname: m.hostname, probeTimeoutMs: m.probeTimeoutMs, logger: ipcLogger() })
      .then((facts) => send({ kind: 'facts', facts }))
      // Probes still running past their time box (a hung dmidecode) must not keep this process.
      .then(() => process.exit(0), (err: unknown) => {
        process.stderr.write(`facts-child: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
        process.exit(1);
      });
  });
}

main();
