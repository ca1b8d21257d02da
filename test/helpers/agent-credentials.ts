/**
 * An in-process agent's TLS identity for tests: a certificate for `agent <nodeId>` issued by the
 * process's test CA (test/helpers/pki.ts), as the StaticCredentials an Agent takes.
 */
import { StaticCredentials } from '../../agent/node-certificate';
import { testPki } from './pki';

export async function agentCredentials(nodeId: string): Promise<StaticCredentials> {
  const pki = await testPki();
  const id = await pki.identity('agent', nodeId);
  return new StaticCredentials({ caPem: pki.caPem, certPem: id.certPem, keyPem: id.keyPem });
}
