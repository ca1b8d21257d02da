/**
 * Table tests of shared/keyspace.ts: every key family builds and parses back to the same
 * ids, keys of one family never parse as another, and ids that would break the key layout
 * (slashes, empty, leading punctuation) are refused before anything is written.
 */
import { expect } from 'chai';
import { Keyspace, DEFAULT_PREFIX, isValidSegment } from '../../shared/keyspace';
import { InvalidArgumentError } from '../../shared/errors';

describe('shared/keyspace', () => {
  const ks = new Keyspace('/t/');

  describe('leaf families round-trip (build → parse gives the id back)', () => {
    const families: { name: string; build: (id: string) => string; parse: (key: string) => string | undefined; expected: (id: string) => string }[] = [
      { name: 'members', build: (id) => ks.member(id), parse: (k) => ks.parseMember(k), expected: (id) => `/t/members/${id}` },
      { name: 'nodes', build: (id) => ks.node(id), parse: (k) => ks.parseNode(k), expected: (id) => `/t/nodes/${id}` },
      { name: 'facts', build: (id) => ks.facts(id), parse: (k) => ks.parseFacts(k), expected: (id) => `/t/facts/${id}` },
      { name: 'groups', build: (id) => ks.group(id), parse: (k) => ks.parseGroup(k), expected: (id) => `/t/groups/${id}` },
      { name: 'files', build: (id) => ks.file(id), parse: (k) => ks.parseFile(k), expected: (id) => `/t/files/${id}` },
      { name: 'election', build: (id) => ks.electionCandidate(id), parse: (k) => ks.parseElectionCandidate(k), expected: (id) => `/t/election/coordinator/${id}` },
      { name: 'pki users', build: (id) => ks.pkiUser(id), parse: (k) => ks.parsePkiUser(k), expected: (id) => `/t/pki/users/${id}` },
      { name: 'pki agents', build: (id) => ks.pkiAgent(id), parse: (k) => ks.parsePkiAgent(k), expected: (id) => `/t/pki/agents/${id}` },
      { name: 'pki tokens', build: (id) => ks.pkiToken(id), parse: (k) => ks.parsePkiToken(k), expected: (id) => `/t/pki/tokens/${id}` },
    ];
    const ids = ['n1', 'node-001', 'rack1.host7', 'A', '0', 'mac:52:54:00:12:34:56', 'x'.repeat(253), 'a_b'];
    for (const f of families) {
      for (const id of ids) {
        it(`${f.name}: ${id.length > 20 ? `${id.slice(0, 8)}…(${id.length})` : id}`, () => {
          const key = f.build(id);
          expect(key).to.equal(f.expected(id));
          expect(f.parse(key)).to.equal(id);
        });
      }
    }
  });

  describe('invalid ids are refused with a message naming the rule', () => {
    const bad = ['', '/', 'a/b', '../etc', '-lead', '.hidden', '_x', 'sp ace', 'tab\t', 'ünï', 'x'.repeat(254), 'a\nb', 'semi;colon'];
    const builders: [string, (id: string) => string][] = [
      ['member', (id) => ks.member(id)],
      ['node', (id) => ks.node(id)],
      ['facts', (id) => ks.facts(id)],
      ['group', (id) => ks.group(id)],
      ['file', (id) => ks.file(id)],
      ['job', (id) => ks.job(id)],
      ['electionCandidate', (id) => ks.electionCandidate(id)],
      ['config bundle', (id) => ks.config(id, '1')],
      ['config version', (id) => ks.config('base', id)],
      ['jobNode', (id) => ks.jobNode('j1', id)],
      ['pkiUser', (id) => ks.pkiUser(id)],
      ['pkiAgent', (id) => ks.pkiAgent(id)],
      ['pkiToken', (id) => ks.pkiToken(id)],
    ];
    for (const [name, build] of builders) {
      for (const id of bad) {
        it(`${name}(${JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}…` : id)}) throws InvalidArgumentError`, () => {
          expect(() => build(id)).to.throw(InvalidArgumentError, /use 1-253 characters/);
          expect(isValidSegment(id)).to.equal(false);
        });
      }
    }
  });

  describe('keys of one family do not parse as another', () => {
    const cases: [string, string][] = [
      ['/t/nodes/n1', 'parseMember'],
      ['/t/members/n1', 'parseNode'],
      ['/t/members/n1', 'parseFacts'],
      ['/u/members/n1', 'parseMember'], // other prefix
      ['/t/members/', 'parseMember'], // empty id
      ['/t/members/a/b', 'parseMember'], // nested
      ['/t/election/coordinator/', 'parseElectionCandidate'],
      ['/t/events/abc', 'parseEvent'],
      ['/t/events/', 'parseEvent'],
      ['/t/events/-1', 'parseEvent'],
      ['/t/configs/base', 'parseConfig'],
      ['/t/configs/base/1/x', 'parseConfig'],
      ['/t/jobs/j1/nodes', 'parseJobKey'],
      ['/t/jobs/j1/other/n1', 'parseJobKey'],
      ['/t/jobs/', 'parseJobKey'],
      ['/t/pki/users/alice', 'parsePkiAgent'],
      ['/t/pki/agents/n1', 'parsePkiUser'],
      ['/t/pki/tokens/abc123', 'parsePkiRevoked'],
      ['/t/pki/revoked/0abc', 'parsePkiRevoked'], // leading zero: not the normal form
      ['/t/pki/revoked/ABC', 'parsePkiRevoked'], // upper case: not the normal form
      ['/t/pki/revoked/', 'parsePkiRevoked'],
      ['/t/pki/ca', 'parsePkiUser'],
    ];
    for (const [key, parser] of cases) {
      it(`${parser}(${key}) is undefined`, () => {
        const fn = (ks as unknown as Record<string, (k: string) => unknown>)[parser].bind(ks);
        expect(fn(key)).to.equal(undefined);
      });
    }
  });

  describe('structured keys', () => {
    it('configs/<bundle>/<version> round-trips', () => {
      expect(ks.config('base', '3')).to.equal('/t/configs/base/3');
      expect(ks.parseConfig(ks.config('base', '3'))).to.deep.equal({ bundle: 'base', version: '3' });
      expect(ks.configVersionsPrefix('base')).to.equal('/t/configs/base/');
    });

    it('jobs/<jobId> and jobs/<jobId>/nodes/<nodeId> round-trip', () => {
      expect(ks.parseJobKey(ks.job('j-1'))).to.deep.equal({ jobId: 'j-1' });
      expect(ks.jobNode('j-1', 'n7')).to.equal('/t/jobs/j-1/nodes/n7');
      expect(ks.parseJobKey(ks.jobNode('j-1', 'n7'))).to.deep.equal({ jobId: 'j-1', nodeId: 'n7' });
    });

    const seqs = [0, 1, 9, 10, 12345, 2 ** 40, Number.MAX_SAFE_INTEGER];
    for (const seq of seqs) {
      it(`events/<seq> ${seq} round-trips and sorts numerically`, () => {
        const key = ks.event(seq);
        expect(ks.parseEvent(key)).to.equal(seq);
        expect(key.slice(ks.eventsPrefix().length)).to.have.length.of.at.least(16);
      });
    }

    it('event keys sort in numeric order (lexical order of the padded sequence)', () => {
      const keys = seqs.map((s) => ks.event(s));
      expect([...keys].sort()).to.deep.equal(keys);
    });

    it('pki/ca and pki/revoked/<serial> (lower-case hex, no leading zero, at most 20 bytes)', () => {
      expect(ks.pkiCa()).to.equal('/t/pki/ca');
      const serial = '4f'.repeat(20);
      expect(ks.pkiRevoked(serial)).to.equal(`/t/pki/revoked/${serial}`);
      expect(ks.parsePkiRevoked(ks.pkiRevoked(serial))).to.equal(serial);
      expect(ks.parsePkiRevoked(ks.pkiRevoked('1'))).to.equal('1');
      for (const bad of ['', '0a', 'ABC', 'g1', '4f'.repeat(20) + '1', 'a/b']) {
        expect(() => ks.pkiRevoked(bad), bad).to.throw(InvalidArgumentError, /invalid certificate serial/);
      }
    });

    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) {
      it(`event(${bad}) is refused`, () => {
        expect(() => ks.event(bad)).to.throw(InvalidArgumentError, /invalid event sequence/);
      });
    }
  });

  describe('prefix', () => {
    it(`defaults to ${DEFAULT_PREFIX}`, () => {
      expect(new Keyspace().member('n1')).to.equal(`${DEFAULT_PREFIX}members/n1`);
    });
    for (const bad of ['', 'cluster/', '/cluster', 'cluster']) {
      it(`prefix ${JSON.stringify(bad)} is refused`, () => {
        expect(() => new Keyspace(bad)).to.throw(InvalidArgumentError, /must start and end with "\/"/);
      });
    }
    it('every family prefix is under the keyspace prefix and distinct', () => {
      const prefixes = [ks.membersPrefix(), ks.nodesPrefix(), ks.factsPrefix(), ks.configsPrefix(), ks.groupsPrefix(), ks.jobsPrefix(), ks.filesPrefix(), ks.eventsPrefix(), ks.electionPrefix(), ks.pkiTokensPrefix(), ks.pkiUsersPrefix(), ks.pkiAgentsPrefix(), ks.pkiRevokedPrefix()];
      for (const p of prefixes) expect(p.startsWith('/t/')).to.equal(true);
      // No family prefix is a prefix of another, so a range read of one never sees another.
      for (const a of prefixes) for (const b of prefixes) if (a !== b) expect(b.startsWith(a), `${a} vs ${b}`).to.equal(false);
    });
  });
});
