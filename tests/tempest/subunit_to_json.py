#!/usr/bin/env python3
"""stdin: subunit v2 stream; argv[1]: file from `tempest run --list-tests`.
stdout: JSON {test_id: status}. Class-level setUpClass/tearDownClass results
(reported by tempest instead of per-test rows) are fanned out to every test of
that class that has no row of its own."""
import json, re, sys
import subunit, testtools

class Collect(testtools.StreamResult):
    def __init__(self):
        super().__init__(); self.res = {}
    def status(self, test_id=None, test_status=None, **kw):
        if test_id and test_status in ('success', 'fail', 'skip', 'xfail', 'uxsuccess'):
            self.res[test_id] = test_status

c = Collect()
subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name='stdout').run(c)
listed = [l.strip() for l in open(sys.argv[1]) if l.startswith('tempest.')]
strip = lambda t: re.sub(r'\[.*\]$', '', t)
out, cls_status = {}, {}
for tid, st in c.res.items():
    m = re.match(r'(setUpClass|tearDownClass) \((.+)\)$', tid)
    if m:
        if m.group(1) == 'setUpClass' or st == 'fail':
            cls_status[m.group(2)] = st
    else:
        out[strip(tid)] = st
for t in listed:
    name = strip(t)
    if name not in out:
        out[name] = cls_status.get(name.rsplit('.', 1)[0], 'not-run')
json.dump(dict(sorted(out.items())), sys.stdout, indent=1); print()
