/**
 * `cluster-agent apply|verify|remove|plan ...`: config units run locally, without etcd or a
 * coordinator. The agent's main dynamically imports this module for those subcommands.
 * (First cut: the entry point exists so main can wire it; the engine lands next.)
 */
export async function runLocalCli(argv: string[]): Promise<number> {
  const sub = argv[0] ?? '';
  if (!['apply', 'verify', 'remove', 'plan'].includes(sub)) {
    process.stderr.write(`cluster-agent: unknown local command ${JSON.stringify(sub)} (use apply, verify, remove or plan)\n`);
    return 1;
  }
  process.stderr.write(`cluster-agent ${sub}: not available in this build yet\n`);
  return 1;
}
