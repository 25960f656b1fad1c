#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check scripts/qmp-relay.py against a real QEMU, without a guest.

    qmp-relay-test.py [--relay PATH] QEMU_BINARY

Starts QEMU (stopped, with a gru-tlb device behind a root port and its QMP
monitor on a socket), the relay between that socket and a socket that
plays the guest's serial port, and sends what a hostile guest would.  Each
command the tests need must reach QEMU and get QEMU's answer; everything
else must be answered by the relay and must not reach QEMU, even when
hidden from Python's JSON parser in ways QEMU's parser reads differently.
Prints KTAP and a last line "N passed, N failed"; exit 0 only if all
passed.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

REFUSED = "refused by guest-run.sh's QMP relay"


def main():
    args = sys.argv[1:]
    relay = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "qmp-relay.py")
    if len(args) == 3 and args[0] == "--relay":
        relay, args = args[1], args[2:]
    if len(args) != 1:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    qemu_bin = args[0]
    tmp = tempfile.mkdtemp(prefix="qmp-relay-test.")
    victim = os.path.join(tmp, "written-by-guest")
    qmp_path = os.path.join(tmp, "qmp.sock")
    guest_path = os.path.join(tmp, "guest.sock")

    gsrv = socket.socket(socket.AF_UNIX)
    gsrv.bind(guest_path)
    gsrv.listen(1)
    qemu = subprocess.Popen(
        [qemu_bin, "-machine", "q35", "-nodefaults", "-display", "none",
         "-S", "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
         "-device", "pcie-root-port,id=rp0,chassis=1,slot=1",
         "-device", "gru-tlb,id=gru0,bus=rp0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(qmp_path):
            break
        time.sleep(0.05)
    rly = subprocess.Popen([sys.executable, relay, guest_path, qmp_path,
                            str(qemu.pid), os.path.join(tmp, "log")],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    gsrv.settimeout(10)
    guest, _ = gsrv.accept()
    guest.settimeout(2)

    def read_all():
        out = b""
        try:
            while True:
                chunk = guest.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out

    def send(line):
        guest.sendall(line + b"\n")
        replies = []
        for ln in read_all().split(b"\n"):
            ln = ln.strip()
            if not ln:
                continue
            try:
                replies.append(json.loads(ln))
            except ValueError:
                replies.append({"unparsed": ln.decode(errors="replace")})
        return [r for r in replies if "event" not in r]

    read_all()   # QMP's greeting
    results = []

    def check(name, ok, why=""):
        results.append(ok)
        print("%sok %d %s%s" % ("" if ok else "not ", len(results), name,
                                "" if ok else " # " + why))

    def refused(replies):
        return bool(replies) and all(
            r.get("error", {}).get("desc") == REFUSED for r in replies)

    def qemu_answered(replies, want_id):
        return any(r.get("id") == want_id and "error" not in r or
                   r.get("id") == want_id and
                   r["error"].get("desc") != REFUSED for r in replies)

    print("TAP version 13")
    r = send(b'{"execute":"qmp_capabilities","id":"caps"}')
    check("capabilities_pass", qemu_answered(r, "caps"), repr(r))
    r = send(b'{"execute":"qom-set","arguments":{"path":"/machine/peripheral/'
             b'gru0","property":"x-no-gen-check","value":true},"id":"set"}')
    check("qom_set_of_the_test_property_passes",
          any(r_.get("id") == "set" and "return" in r_ for r_ in r), repr(r))
    r = send(b'{"execute":"qom-get","arguments":{"path":"/machine/peripheral/'
             b'gru0","property":"x-no-gen-check"},"id":"get"}')
    check("qom_get_sees_it", any(r_.get("id") == "get" and
                                 r_.get("return") is True for r_ in r),
          repr(r))
    r = send(b'{"execute":"query-status","id":"status"}')
    check("query_status_passes", any(r_.get("id") == "status" and
                                     "return" in r_ for r_ in r), repr(r))
    r = send(b'\xff')
    check("parser_reset_passes", not any("error" in r_ and
                                         r_["error"].get("desc") == REFUSED
                                         for r_ in r), repr(r))

    hmp = (b'{"execute":"human-monitor-command","arguments":{"command-line":'
           b'"info version"},"id":"hmp"}')
    chardev = ('{"execute":"chardev-add","arguments":{"id":"x","backend":'
               '{"type":"file","data":{"out":"%s"}}},"id":"file"}'
               % victim).encode()
    hostile = [
        ("plain_hmp_refused", hmp),
        ("nan_smuggle_refused",
         b'{"execute":"qmp_capabilities","a":NaN,"b":' + hmp + b'}'),
        ("infinity_smuggle_refused",
         b'{"execute":"qmp_capabilities","a":-Infinity,"b":' + chardev + b'}'),
        ("utf16_smuggle_refused",
         '{"execute":"qmp_capabilities","x":"'.encode("utf-16-le") +
         b' {"execute":"query-version","id":"u16"} ' +
         '"}'.encode("utf-16-le")),
        ("duplicate_execute_refused",
         b'{"execute":"human-monitor-command","execute":"qmp_capabilities",'
         b'"arguments":{"command-line":"info version"},"id":"dup"}'),
        ("extra_top_level_key_refused",
         b'{"execute":"qmp_capabilities","x":' + chardev + b'}'),
        ("device_add_romfile_refused",
         b'{"execute":"device_add","arguments":{"driver":"gru-tlb",'
         b'"id":"gru9","bus":"rp0","romfile":"/etc/shadow"},"id":"rom"}'),
        ("device_add_other_driver_refused",
         b'{"execute":"device_add","arguments":{"driver":"e1000",'
         b'"id":"gru8"},"id":"nic"}'),
        ("device_del_other_id_refused",
         b'{"execute":"device_del","arguments":{"id":"rp0"},"id":"del"}'),
        ("qom_set_other_property_refused",
         b'{"execute":"qom-set","arguments":{"path":"/machine/peripheral/'
         b'gru0","property":"contexts","value":1},"id":"ctx"}'),
        ("newline_in_id_refused",
         b'{"execute":"device_del","arguments":{"id":"gru0\\n"},"id":"nl"}'),
        ("deep_nesting_refused", b"[" * 100000),
        ("overlong_line_refused", b'"' + b"a" * 70000 + b'"'),
    ]
    for name, line in hostile:
        r = send(line)
        check(name, refused(r), repr(r)[:200])

    r = send(b'{"execute":"query-version","id":"alive"}')
    check("relay_alive_after_abuse", refused(r), repr(r)[:200])
    r = send(b'{"execute":"qom-get","arguments":{"path":"/machine/peripheral/'
             b'gru0","property":"x-no-gen-check"},"id":"again"}')
    check("qemu_still_answers", any(r_.get("id") == "again" and
                                    "return" in r_ for r_ in r), repr(r))
    check("nothing_written_on_the_host", not os.path.exists(victim))

    guest.close()
    qemu.kill()
    qemu.wait()
    try:
        rly.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rly.kill()
    print("1..%d" % len(results))
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
