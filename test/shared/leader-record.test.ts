/**
 * Table test of shared/leader-record.ts: the one election rule (lowest create revision leads)
 * and its one treatment of a malformed record (skipped, reported, the next candidate leads).
 */
import { expect } from 'chai';
import { decodeCandidate, pickLeader, type RawCandidate } from '../../shared/leader-record';
import { Keyspace } from '../../shared/keyspace';

const ks = new Keyspace('/t/');
const cand = (id: string, rev: string, value?: unknown): RawCandidate => ({
  key: ks.electionCandidate(id),
  createRevision: rev,
  value: typeof value === 'string' ? value : JSON.stringify(value ?? { id, address: `127.0.0.1:${7000 + Number(rev) % 1000}`, startedAt: '2024-01-01T00:00:00Z' }),
});

describe('shared/leader-record', () => {
  describe('pickLeader', () => {
    const rows: { name: string; input: RawCandidate[]; leader?: { id: string; address?: string; createRevision?: string }; order?: string[]; skipped?: RegExp[] }[] = [
      { name: 'no candidates', input: [], order: [] },
      { name: 'one candidate', input: [cand('a', '5')], leader: { id: 'a', address: '127.0.0.1:7005', createRevision: '5' }, order: ['a'] },
      { name: 'lowest create revision wins, whatever the order', input: [cand('b', '12'), cand('a', '9'), cand('c', '30')], leader: { id: 'a' }, order: ['a', 'b', 'c'] },
      { name: 'numeric, not lexical, comparison', input: [cand('x', '100'), cand('y', '99')], leader: { id: 'y' }, order: ['y', 'x'] },
      { name: 'revisions beyond 2^53', input: [cand('x', '9007199254740993'), cand('y', '9007199254740992')], leader: { id: 'y' } },
      { name: 'key outside the election prefix: skipped', input: [{ ...cand('a', '1'), key: '/t/other/a' }, cand('b', '2')], leader: { id: 'b' }, skipped: [/not an election key/] },
      { name: 'malformed lowest record (not JSON): skipped, the next candidate leads', input: [cand('a', '1', 'not json'), cand('b', '2')], leader: { id: 'b' }, order: ['b'], skipped: [/election record .*\/a is not JSON/] },
      { name: 'JSON that is not an object: skipped', input: [cand('a', '1', '"a"'), cand('b', '2')], leader: { id: 'b' }, skipped: [/not a JSON object/] },
      { name: 'record without address: skipped', input: [cand('a', '1', { id: 'a' }), cand('b', '2')], leader: { id: 'b' }, skipped: [/no valid "address"/] },
      { name: 'record with an undialable address: skipped', input: [cand('a', '1', { id: 'a', address: 'http://x' })], order: [], skipped: [/no valid "address"/] },
      { name: 'create revision that is not a number: skipped', input: [cand('a', 'x1'), cand('b', '2')], leader: { id: 'b' }, skipped: [/not a number/] },
      { name: 'every record malformed: no leader', input: [cand('a', '1', '{'), cand('b', '2', { id: 'b' })], order: [], skipped: [/not JSON/, /no valid "address"/] },
      { name: 'id falls back to the key', input: [cand('k1', '3', { address: 'coord-1:7400' })], leader: { id: 'k1', address: 'coord-1:7400' } },
      { name: 'IPv6 address', input: [cand('a', '3', { id: 'a', address: '[::1]:7400' })], leader: { id: 'a', address: '[::1]:7400' } },
    ];
    for (const r of rows) {
      it(r.name, () => {
        const pick = pickLeader(r.input, ks);
        if (r.leader) {
          expect(pick.leader?.id).to.equal(r.leader.id);
          if (r.leader.address) expect(pick.leader?.address).to.equal(r.leader.address);
          if (r.leader.createRevision) expect(pick.leader?.createRevision).to.equal(r.leader.createRevision);
          expect(pick.candidates[0]).to.equal(pick.leader);
        } else {
          expect(pick.leader).to.equal(undefined);
        }
        if (r.order) expect(pick.candidates.map((c) => c.id)).to.deep.equal(r.order);
        const skipped = r.skipped ?? [];
        expect(pick.skipped).to.have.length(skipped.length);
        skipped.forEach((re, i) => expect(pick.skipped[i].problem).to.match(re));
      });
    }
  });

  describe('decodeCandidate', () => {
    it('keeps id, address and startedAt of a well-formed record', () => {
      expect(decodeCandidate(cand('r1', '7', { id: 'r1', address: 'c1:7400', startedAt: '2024-05-01T00:00:00Z' }), ks)).to.deep.equal({
        key: ks.electionCandidate('r1'), createRevision: '7', id: 'r1', address: 'c1:7400', startedAt: '2024-05-01T00:00:00Z',
      });
    });
    it('a missing startedAt is the empty string', () => {
      const c = decodeCandidate(cand('r1', '7', { id: 'r1', address: 'c1:7400' }), ks);
      expect(c).to.include({ startedAt: '' });
    });
  });
});
