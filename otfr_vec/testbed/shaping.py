"""Per-worker KV links on one loopback, shaped at both ends with Linux traffic control.

The model moves a KV cache at ``min(bw_p / n_p, bw_d / n_d)``: the prefill worker's
interface is shared by its ``n_p`` concurrent transfers and the decode worker's by its
``n_d``. On a single loopback every packet leaves through ``lo``'s egress queue and comes
back through ``lo``'s ingress, so the two ends are shaped at those two points:

* **sending end** -- ``lo`` egress: an HTB root ``1:``; one class per prefill worker at
  ``bw0 * f[pod]``, selected by a u32 filter on the packet's *source* address (the
  worker's own address) and source port (the KV port), so only KV bytes are shaped;
* **receiving end** -- ``lo`` ingress redirects KV packets (source port = the KV port)
  to an IFB device, whose egress HTB root ``2:`` has one class per decode worker at
  ``bw0 * f[pod]``, selected by the *destination* address.

A leaf qdisc under every class (``fq_codel`` by default, as a Linux host has; ``sfq`` or
``pfifo`` on request) shares the class among the flows in it, so each end approximates
processor sharing over its transfers. What TCP makes of two shaped stages in series is
its own congestion control, not the model's formula: the flows of one sender to a fast
and a slow receiver are *not* held to ``bw_p / 2`` each (the fast one takes what the slow
one leaves), so the testbed is closer to max-min fairness than the model; this is
measured in ``benchmarks/testbed_ps.py`` and sweeps/TESTBED.md.

Rates are payload rates: a class carries ``rate x mtu / (mtu - 52)`` bytes of IP packets
per second, so a KV cache of B bytes moves in ``B / rate`` as in the model. Loopback
sends one MTU-sized segment per packet (``gso_max_segs 1``): a 64 KB GSO burst would pass
a token bucket whole and make short transfers faster than their rate.

Control traffic (HTTP between router and workers, ACKs of KV flows) matches no filter and
passes unshaped (HTB ``default 0``: unclassified packets go out directly). Loopback's
MTU is set to ``mtu`` (1500, an Ethernet link).

Everything here runs inside the testbed's private network namespace (see
:mod:`.netns`); the namespace, and with it every qdisc, class, filter and the IFB device,
vanishes with the run's last process. :meth:`Shaper.close` also removes them explicitly
on a normal exit.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

IFB = "tbifb0"
LEAVES = ("pfifo", "fq_codel", "sfq")  # this kernel class may lack the last two
ROOT_SEND, ROOT_RECV = 0x10000, 0x20000  # 1:0 on lo, 2:0 on the IFB
INGRESS = 0xFFFF0000
ETH_P_IP = 0x0800
HEADER_BYTES = 52  # IPv4 + TCP + timestamp option, per segment


def _ip_hex(addr: str) -> str:
    return "0x" + socket.inet_aton(addr).hex()


def _bits(rate_bytes: float) -> str:
    return f"{max(int(round(rate_bytes * 8)), 8)}bit"


class Shaper:
    """The shaped links of one testbed run.

    ``senders`` / ``receivers``: worker id -> its loopback address, for the workers whose
    sending (prefill) or receiving (decode) end is shaped; ``rates``: worker id -> bytes/s.
    """

    def __init__(
        self,
        senders: Mapping[int, str],
        receivers: Mapping[int, str],
        rates: Mapping[int, float],
        kv_port: int,
        leaf: str = "pfifo",
        mtu: int = 1500,
        limit: int = 100,
    ):
        if leaf not in LEAVES:
            raise ValueError(f"leaf qdisc {leaf!r}: allowed values are {', '.join(LEAVES)}")
        self.senders, self.receivers = dict(senders), dict(receivers)
        self.kv_port, self.leaf, self.mtu, self.limit = int(kv_port), leaf, int(mtu), int(limit)
        self.rates = {int(k): float(v) for k, v in rates.items()}
        self.ipr = IPRoute()
        self.lo = self.ipr.link_lookup(ifname="lo")[0]
        self.ifb = None
        self._setup()

    # -- set-up ------------------------------------------------------------------------

    def _classid(self, root: int, worker: int) -> int:
        return root | (0x10 + worker)

    def _leaf(self, dev: int, parent: int, worker: int, root: int) -> None:
        handle = ((0x100 + worker + (0x1000 if root == ROOT_RECV else 0)) << 16) & 0xFFFF0000
        kw = {"parent": parent}
        if self.leaf == "pfifo":
            kw["limit"] = self.limit  # pyroute2 would send 0: a queue that drops everything
        elif self.leaf == "sfq":
            kw["perturb"] = 0
        self.ipr.tc("add", self.leaf, dev, handle, **kw)

    def _class(self, dev: int, root: int, worker: int, cmd: str = "add-class") -> None:
        # HTB counts whole IP packets; the model's bandwidth moves KV payload, so the class
        # rate adds the TCP/IP headers of a full segment (20 + 20 + 12 B of timestamps)
        rate = _bits(self.rates[worker] * self.mtu / (self.mtu - HEADER_BYTES))
        # burst: at least 2 MTU-sized packets, else HTB's per-tick default (rate / HZ + mtu)
        burst = max(2 * self.mtu, int(self.rates[worker] / 250) + self.mtu)
        self.ipr.tc(
            cmd,
            "htb",
            dev,
            self._classid(root, worker),
            parent=root,
            rate=rate,
            ceil=rate,
            burst=burst,
            cburst=burst,
            mtu=self.mtu,
        )

    def _filter(self, dev: int, root: int, worker: int, addr: str, field: int) -> None:
        # u32 keys "value/mask+offset" into the IPv4 header: source address at 12,
        # destination at 16, and (for a 20-byte header, which loopback TCP has) the TCP
        # source port in the upper half of the word at 20
        self.ipr.tc(
            "add-filter",
            "u32",
            dev,
            parent=root,
            prio=1,
            protocol=ETH_P_IP,
            target=self._classid(root, worker),
            keys=[f"{_ip_hex(addr)}/0xffffffff+{field}", f"0x{self.kv_port:04x}0000/0xffff0000+20"],
        )

    def _setup(self) -> None:
        ipr, lo = self.ipr, self.lo
        # one MTU-sized segment per packet: a TCP burst built as one 64 KB GSO packet would
        # pass a token bucket whole and put the class in debt afterwards (measured: a
        # 60 KB flow at 0.5 Mbit/s then took 0.68 s instead of 0.96 s)
        ipr.link("set", index=lo, mtu=self.mtu, state="up")
        ipr.link("set", index=lo, gso_max_segs=1)
        ipr.tc("add", "htb", lo, ROOT_SEND, default=0)
        for w, addr in self.senders.items():
            self._class(lo, ROOT_SEND, w)
            self._leaf(lo, self._classid(ROOT_SEND, w), w, ROOT_SEND)
            self._filter(lo, ROOT_SEND, w, addr, 12)
        if not self.receivers:
            return
        ipr.link("add", ifname=IFB, kind="ifb")
        self.ifb = ipr.link_lookup(ifname=IFB)[0]
        ipr.link("set", index=self.ifb, mtu=self.mtu, state="up")
        ipr.tc("add", "htb", self.ifb, ROOT_RECV, default=0)
        for w, addr in self.receivers.items():
            self._class(self.ifb, ROOT_RECV, w)
            self._leaf(self.ifb, self._classid(ROOT_RECV, w), w, ROOT_RECV)
            self._filter(self.ifb, ROOT_RECV, w, addr, 16)
        ipr.tc("add", "ingress", lo, INGRESS)
        ipr.tc(
            "add-filter",
            "u32",
            lo,
            parent=INGRESS,
            prio=1,
            protocol=ETH_P_IP,
            target=0x1,
            keys=[f"0x{self.kv_port:04x}0000/0xffff0000+20"],
            action=dict(kind="mirred", direction="egress", action="redirect", ifindex=self.ifb),
        )

    # -- changes -----------------------------------------------------------------------

    def set_rate(self, worker: int, rate: float) -> None:
        """Change worker ``worker``'s link (both ends where shaped) to ``rate`` bytes/s."""
        self.rates[worker] = float(rate)
        if worker in self.senders:
            self._class(self.lo, ROOT_SEND, worker, "change-class")
        if worker in self.receivers:
            self._class(self.ifb, ROOT_RECV, worker, "change-class")

    def class_bytes(self) -> dict[tuple[str, int], int]:
        """Bytes sent through every worker class so far: ``{("send"|"recv", worker): n}``."""
        out = {}
        for end, dev, root, ids in (
            ("send", self.lo, ROOT_SEND, self.senders),
            ("recv", self.ifb, ROOT_RECV, self.receivers),
        ):
            if dev is None:
                continue
            for msg in self.ipr.get_classes(dev):
                handle = msg["handle"]
                w = (handle & 0xFFFF) - 0x10
                if handle & 0xFFFF0000 == root and w in ids:
                    stats = msg.get_attr("TCA_STATS2")
                    basic = stats.get_attr("TCA_STATS_BASIC") if stats else None
                    out[(end, w)] = int(basic["bytes"]) if basic else 0
        return out

    def close(self) -> None:
        """Remove the qdiscs, filters and the IFB device (the namespace would anyway)."""
        try:
            for dev, handle in ((self.lo, INGRESS), (self.lo, ROOT_SEND)):
                try:
                    kind = "ingress" if handle == INGRESS else "htb"
                    self.ipr.tc("del", kind, dev, handle)
                except NetlinkError:
                    pass
            if self.ifb is not None:
                try:
                    self.ipr.link("del", index=self.ifb)
                except NetlinkError:
                    pass
                self.ifb = None
        finally:
            self.ipr.close()
