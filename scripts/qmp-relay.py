#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""QMP relay between the test guest's serial port and QEMU's monitor.

    qmp-relay.py GUEST_SOCKET QMP_SOCKET QEMU_PID LOGFILE

scripts/guest-run.sh wires the guest's ttyS3 to GUEST_SOCKET and QEMU's
QMP monitor to QMP_SOCKET.  The relay copies QEMU's output to the guest and
the guest's commands to QEMU, logging both, and ends with QEMU (EOF on
either socket, or QEMU_PID gone).  QEMU's socket chardevs take one client
each, so this is the only QMP session of the boot.

The guest is not trusted with the whole monitor (human-monitor-command
alone can run host programs as QEMU's user): only what the tests need
passes (query-status, plugging gru-tlb devices, their x- test property);
anything else gets a QMP error from the relay itself.
"""
import json, os, re, select, socket, sys, time

guest_path, qmp_path, qpid, logpath = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def alive():
    try:
        os.kill(qpid, 0)
        return True
    except OSError:
        return False

def connect(path):
    while alive():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.05)
    sys.exit(0)

GRU_ID = re.compile(r"gru[A-Za-z0-9_-]*")
GRU_PATH = re.compile(r"/machine/peripheral/gru[A-Za-z0-9_-]*")
GRU_ADD_KEYS = {"driver", "id", "bus", "addr", "contexts", "tlb-sets",
                "tlb-ways", "vectors", "insn-latency-ns", "x-no-gen-check",
                "x-fadd-interference"}
SCALAR = (str, int, float, bool)
MAX_LINE = 65536

def no_constant(name):
    raise ValueError(name)

def parse(body):
    """The guest's line as QEMU would read it, or None if in any doubt."""
    try:
        cmd = json.loads(body.decode("utf-8"), parse_constant=no_constant)
    except Exception:
        return None
    if not isinstance(cmd, dict) or not set(cmd) <= {"execute", "arguments", "id"}:
        return None
    if not isinstance(cmd.get("arguments", {}), dict) or \
       not isinstance(cmd.get("id", ""), str):
        return None
    return cmd

def gru_name(rx, v):
    return isinstance(v, str) and rx.fullmatch(v) is not None

def allowed(cmd):
    name, args = cmd.get("execute"), cmd.get("arguments", {})
    if not all(isinstance(v, SCALAR) for v in args.values()):
        return False
    if name in ("qmp_capabilities", "query-status"):
        return not args
    if name == "device_del":
        return set(args) == {"id"} and gru_name(GRU_ID, args["id"])
    if name == "device_add":
        return args.get("driver") == "gru-tlb" and set(args) <= GRU_ADD_KEYS
    if name == "qom-get":
        return set(args) == {"path", "property"} and \
            gru_name(GRU_PATH, args["path"])
    if name == "qom-set":
        return set(args) == {"path", "property", "value"} and \
            gru_name(GRU_PATH, args["path"]) and \
            args["property"] == "x-no-gen-check" and \
            isinstance(args["value"], bool)
    return False

def from_guest(l):
    """Pass one line from the guest on, re-encoded, or answer it with an error.

    What goes to QEMU is always this relay's own encoding of what it
    checked, never the guest's bytes: QEMU's parser and Python's disagree
    on enough (NaN, UTF-16, error recovery inside an object) to smuggle a
    second command past a check of the first.
    """
    body = l.strip(b" \t\r\xff")
    if not body:
        qmp.sendall(b"\xff\n")    # gru-qmp's reset of QEMU's parser
        return True
    cmd = parse(body) if len(l) <= MAX_LINE else None
    if cmd is not None and allowed(cmd):
        qmp.sendall(json.dumps(cmd).encode() + b"\n")
        return True
    reply = {"error": {"class": "GenericError",
                       "desc": "refused by guest-run.sh's QMP relay"}}
    if cmd is not None and "id" in cmd:
        reply["id"] = cmd["id"]
    out = json.dumps(reply).encode() + b"\r\n"
    guest.sendall(out)
    log.write(b"-> (refused) " + l[:200] + b"\n<- " + out.rstrip() + b"\n")
    return False

# The guest side first, so that QMP's greeting has somewhere to go.
guest = connect(guest_path)
qmp = connect(qmp_path)
log = open(logpath, "ab", buffering=0)
tag = {guest: b"-> ", qmp: b"<- "}
line = {guest: b"", qmp: b""}   # the serial port hands over a byte at a time
while True:
    ready, _, _ = select.select([guest, qmp], [], [], 1.0)
    if not alive():
        break
    for s in ready:
        data = s.recv(65536)
        if not data:
            sys.exit(0)
        if s is qmp:
            guest.sendall(data)
        *done, line[s] = (line[s] + data).split(b"\n")
        for l in done:
            if s is qmp or from_guest(l):
                log.write(tag[s] + l[:4096] + b"\n")
        if s is guest and len(line[s]) > MAX_LINE:
            from_guest(line[s][:MAX_LINE + 1])   # refused: too long
            line[s] = b""
