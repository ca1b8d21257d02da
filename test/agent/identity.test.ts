import { expect } from 'chai';
import { resolveIdentity, MACHINE_ID_FILE, DMI_UUID_FILE, BOOT_ID_FILE, type IdentityEnvironment } from '../../agent/identity';

function env(files: Record<string, string>): IdentityEnvironment {
  let n = 0;
  return { readFile: (p) => files[p], hostname: () => 'host-a', randomId: () => `rnd-${++n}` };
}

describe('agent identity', () => {
  const MID = '3d1219c7c4c5404aaa1f6d2a48adfda4';
  const DMI = '4C4C4544-0042-3510-8052-B4C04F4B4E32';
  const cases: { name: string; inputs: { nodeId?: string }; files: Record<string, string>; id?: string; source?: string; error?: RegExp }[] = [
    { name: '--node-id wins over machine-id', inputs: { nodeId: 'n1' }, files: { [MACHINE_ID_FILE]: MID }, id: 'n1', source: 'flag' },
    { name: 'machine-id (trailing newline)', inputs: {}, files: { [MACHINE_ID_FILE]: `${MID}\n`, [DMI_UUID_FILE]: DMI }, id: MID, source: 'machine-id' },
    { name: 'DMI UUID when machine-id is missing, lower-cased', inputs: {}, files: { [DMI_UUID_FILE]: `${DMI}\n` }, id: DMI.toLowerCase(), source: 'dmi-uuid' },
    { name: 'DMI UUID when machine-id is empty', inputs: {}, files: { [MACHINE_ID_FILE]: '\n', [DMI_UUID_FILE]: DMI }, id: DMI.toLowerCase(), source: 'dmi-uuid' },
    { name: 'all-zero machine-id is not an identity', inputs: {}, files: { [MACHINE_ID_FILE]: '0'.repeat(32), [DMI_UUID_FILE]: DMI }, id: DMI.toLowerCase(), source: 'dmi-uuid' },
    { name: 'placeholder DMI UUID refused', inputs: {}, files: { [DMI_UUID_FILE]: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF' }, error: /cannot determine a node id.*--node-id/ },
    { name: 'nothing at all', inputs: {}, files: {}, error: /cannot determine a node id: .*pass --node-id ID/ },
    { name: 'invalid --node-id', inputs: { nodeId: 'a/b' }, files: { [MACHINE_ID_FILE]: MID }, error: /invalid --node-id "a\/b": use 1-253 characters/ },
    { name: 'empty --node-id', inputs: { nodeId: '' }, files: { [MACHINE_ID_FILE]: MID }, error: /invalid --node-id/ },
    { name: 'leading dash refused', inputs: { nodeId: '-x' }, files: {}, error: /invalid --node-id/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.error) {
        expect(() => resolveIdentity(c.inputs, env(c.files))).to.throw(c.error);
        return;
      }
      const id = resolveIdentity(c.inputs, env(c.files));
      expect(id.nodeId).to.equal(c.id);
      expect(id.nodeIdSource).to.equal(c.source);
    });
  }

  it('reads the boot id, unless overridden', () => {
    const files = { [MACHINE_ID_FILE]: MID, [BOOT_ID_FILE]: 'b00t-1\n' };
    expect(resolveIdentity({}, env(files)).bootId).to.equal('b00t-1');
    expect(resolveIdentity({ bootId: 'sim-2' }, env(files)).bootId).to.equal('sim-2');
    expect(() => resolveIdentity({ bootId: ' ' }, env(files))).to.throw(/--boot-id must not be empty/);
  });

  it('falls back to a per-process boot id without /proc', () => {
    expect(resolveIdentity({ nodeId: 'n1' }, env({})).bootId).to.match(/^unknown-rnd-/);
  });

  it('hostname from the machine unless overridden; a new instance id per resolution', () => {
    const e = env({ [MACHINE_ID_FILE]: MID });
    const a = resolveIdentity({}, e);
    const b = resolveIdentity({ hostname: 'sandbox-7' }, e);
    expect(a.hostname).to.equal('host-a');
    expect(b.hostname).to.equal('sandbox-7');
    expect(a.instanceId).to.not.equal(b.instanceId);
  });

  it('works on this machine', () => {
    const id = resolveIdentity({ nodeId: 'n1' });
    expect(id.bootId).to.match(/^[0-9a-f-]{36}$/);
    expect(id.instanceId).to.match(/^[0-9a-f-]{36}$/);
  });
});
