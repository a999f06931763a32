// The netlink transport against a real kernel peer that every Linux has, even without IPVS: the generic
// netlink controller (family "nlctrl"). Read-only requests, no privileges, nothing to clean up.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeFamily, getFamilyPayload } from '../../src/ipvs/codec.js';
import { resolveFamily } from '../../src/ipvs/client.js';
import { GENL_ID_CTRL, NETLINK_GENERIC } from '../../src/ipvs/constants.js';
import { NetlinkTransportError } from '../../src/ipvs/errors.js';
import { genlPayload } from '../../src/ipvs/netlink.js';
import { kernelErrno, NetlinkTransport } from '../../src/ipvs/transport.js';

const getFamily = (name: string) => ({ type: GENL_ID_CTRL, flags: 0, payload: getFamilyPayload(name) });

describe('netlink transport (generic netlink controller)', () => {
  let t: NetlinkTransport;
  before(() => {
    t = new NetlinkTransport({ protocol: NETLINK_GENERIC, maxBatch: 2 });
  });
  after(() => t.close());

  it('resolves a family id and reports a missing family as ENOENT', async () => {
    assert.equal(await resolveFamily(t, 'nlctrl'), GENL_ID_CTRL);
    await assert.rejects(resolveFamily(t, 'NO_SUCH_FAMILY'), (e) => kernelErrno(e) === 2);
  });

  it('batch: one errno per request, in order, with several requests per sendmsg', async () => {
    const before = t.counters.sendmsg;
    const r = await t.batch([getFamily('nlctrl'), getFamily('NOPE1'), getFamily('nlctrl'), getFamily('NOPE2'), getFamily('nlctrl')]);
    assert.deepEqual(r, [0, 2, 0, 2, 0]);
    // maxBatch 2 → ceil(5 / 2) datagrams, not 5
    assert.equal(t.counters.sendmsg - before, 3);
  });

  it('requestMany: each request its own answer, in order, across datagrams, refusals included', async () => {
    const before = t.counters.sendmsg;
    const r = await t.requestMany([getFamily('nlctrl'), getFamily('NOPE1'), getFamily('nlctrl'), getFamily('nlctrl'), getFamily('NOPE2')]);
    assert.deepEqual(r.map((x) => [x.errno, x.replies.length]), [[0, 1], [2, 0], [0, 1], [0, 1], [2, 0]]);
    for (const i of [0, 2, 3]) assert.equal(decodeFamily(r[i]!.replies[0]!.payload).name, 'nlctrl');
    assert.equal(t.counters.sendmsg - before, 3, 'maxBatch 2: three datagrams for five requests');
  });

  it('dump returns every message before DONE', async () => {
    const replies = await t.dump({ type: GENL_ID_CTRL, flags: 0, payload: genlPayload(3, 1, []) });
    const names = replies.map((m) => decodeFamily(m.payload).name);
    assert.ok(names.includes('nlctrl'), names.join(','));
    assert.ok(names.length > 1);
  });

  it('concurrent callers are serialized: dumps and requests in flight together all get their own answers', async () => {
    const work = [];
    for (let i = 0; i < 10; i++) {
      work.push(resolveFamily(t, 'nlctrl'));
      work.push(t.dump({ type: GENL_ID_CTRL, flags: 0, payload: genlPayload(3, 1, []) }).then((r) => r.length));
      work.push(resolveFamily(t, `MISSING${i}`).catch((e: unknown) => kernelErrno(e)));
    }
    const out = await Promise.all(work);
    for (let i = 0; i < 10; i++) {
      assert.equal(out[3 * i], GENL_ID_CTRL);
      assert.ok((out[3 * i + 1] as number) > 1);
      assert.equal(out[3 * i + 2], 2);
    }
  });

  it('a closed transport refuses work with ECLOSED', async () => {
    const t2 = new NetlinkTransport({ protocol: NETLINK_GENERIC });
    t2.close();
    await assert.rejects(resolveFamily(t2, 'nlctrl'), (e) => e instanceof NetlinkTransportError && e.code === 'ECLOSED');
  });
});
