"""Plot helpers shared by the result drawers: axis names in words, x scales, error bars,
legends off the data, log axes that keep near-zero schedulers visible."""

from __future__ import annotations

import numpy as np

from .. import policies
from .stores import label

# words and units for the swept keys a report plots; a coordinate's own CF attrs
# (long_name, units) take precedence, so stores that label themselves label the figures
LABELS = {
    "degradation.r": ("residual bandwidth of degraded pods, r", "fraction of nominal"),
    "telemetry.mode": ("bandwidth telemetry", None),
    "health.delay": ("health-label delay", "s"),
    "health.noise": ("label flip probability per refresh", None),
    "health.miss": ("probability a degradation is never labelled", None),
    "cluster.pods": ("pods in the cluster", None),
    "cluster.workers_per_pod": ("workers per pod", None),
    "workload.load": ("offered prefill load", "fraction of capacity"),
    "workload.rate": ("arrival rate", "requests/s"),
    "workload.kind": ("request source", None),
    "workload.trace": ("replayed trace", None),
    "workload.prompt_dist": ("prompt length distribution", None),
    "workload.output_dist": ("output length distribution", None),
    "workload.prompt_mean": ("mean prompt length", "tokens"),
    "network.kv_bytes_per_token": ("KV cache per token", "bytes"),
    "network.bw0": ("nominal KV bandwidth per worker", "B/s"),
    "weights.lambda_r": ("risk-price weight lambda_r", None),
    "weights.lambda_p": ("path-cost weight lambda_p", None),
    "weights.lambda_f": ("health-penalty weight lambda_f", None),
    "price.alpha": ("price weight of utilisation, alpha", None),
    "price.beta": ("price weight of bandwidth deficit, beta", None),
    "price.gamma": ("price weight of timeout rate, gamma", None),
    "price.eta": ("price weight of failure rate, eta", None),
    "price.halflife": ("price half-life", "s"),
    "price.kappa": ("locational blend with the pod mean, kappa", None),
}
FAILURE_PCT = "failure rate (% of measured arrivals)"
STYLE = {"study": "-", "production": "--", "composition": "-."}
MARKER = {"study": "o", "production": "s", "composition": "^"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_label(ds, dim: str) -> str:
    """``dim`` in words with its units: the coordinate's long_name/units, else LABELS."""
    attrs = ds[dim].attrs if dim in ds.coords else {}
    words, units = LABELS.get(dim, (dim, None))
    words = attrs.get("long_name", words)
    units = attrs.get("units", units)
    return f"{words} ({units})" if units and units != "1" else words


def scheduler_style(name: str) -> dict:
    """Colour from the registry; line style and marker by group (study / production /
    composition) so a dozen schedulers stay tellable apart."""
    group = policies.get(name).group if name in policies.REGISTRY else "study"
    return {
        "color": policies.color(name),
        "ls": STYLE.get(group, "-"),
        "marker": MARKER.get(group, "o"),
    }


class XAxis:
    """Where the values of a swept key go on an axis: categories (strings) evenly spaced,
    numbers on a log scale when they span a factor of 8 or more, otherwise linear. The
    severity r runs right to left, so that degradation grows to the right."""

    def __init__(self, ds, dim: str):
        self.dim = dim
        self.values = ds[dim].values
        self.categorical = self.values.dtype.kind in "OUSTb"  # T: numpy StringDType (Zarr 3)
        v = None if self.categorical else self.values.astype(float)
        self.log = bool(v is not None and (v > 0).all() and v.max() / v.min() >= 8)
        self.invert = dim == "degradation.r"
        notes = (["log scale"] if self.log else []) + (
            ["more severe to the right"] if self.invert else []
        )
        self.text = axis_label(ds, dim) + (f"\n({', '.join(notes)})" if notes else "")

    def positions(self, k: int = 0, of: int = 1, width: float = 0.25) -> np.ndarray:
        """Positions of series ``k`` of ``of``, dodged sideways so error bars do not hide
        each other."""
        off = (k - (of - 1) / 2) * (width / max(of, 1))
        if self.categorical:
            return np.arange(len(self.values)) + off
        v = self.values.astype(float)
        if self.log:
            return v * np.exp(off * 0.5)
        span = (v.max() - v.min()) or 1.0
        return v + off * 0.3 * span / max(len(v) - 1, 1)

    def apply(self, ax) -> None:
        """Ticks at the swept values, limits with room for every value (finished or not)."""
        if self.categorical:
            ax.set_xticks(np.arange(len(self.values)), [label(x) for x in self.values])
            ax.set_xlim(-0.5, len(self.values) - 0.5)
        else:
            v = self.values.astype(float)
            if self.log:
                ax.set_xscale("log")
                lim = (v.min() / 1.5, v.max() * 1.5)
            else:
                pad = 0.08 * (v.max() - v.min()) or 0.5 * (abs(v.max()) or 1.0)
                lim = (v.min() - pad, v.max() + pad)
            ax.set_xticks(v, [label(x) for x in self.values])
            ax.minorticks_off()
            ax.set_xlim(*(lim[::-1] if self.invert else lim))
        ax.set_xlabel(self.text)

    def mark_missing(self, ax, missing) -> None:
        """Say on the figure where a swept value has no finished cell."""
        pos = self.positions()
        for i in np.flatnonzero(missing):
            ax.axvline(pos[i], color="0.6", ls=":", lw=1)
            ax.text(
                pos[i],
                0.5,
                " no finished cell",
                rotation=90,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                fontsize=8,
                color="0.4",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )


def errorbar(ax, x, m, half, *, log=False, **style):
    """Means with their interval; on a log axis a bar whose lower end is at or below zero
    runs off the bottom of the axis (the interval includes zero)."""
    m, half = np.asarray(m, float), np.nan_to_num(np.asarray(half, float))
    lower = np.where(m - half > 0, half, m * (1 - 1e-9)) if log else half
    ax.errorbar(x, m, yerr=np.array([lower, half]), capsize=3, ms=4, **style)


def log_limits(ax, lows, highs) -> None:
    """A log y axis spanning the data: the smallest positive mean or bound a factor below,
    the largest above, so a scheduler near zero is drawn, not squashed into a strip."""
    lows = np.asarray([x for x in np.ravel(lows) if np.isfinite(x) and x > 0])
    highs = np.asarray([x for x in np.ravel(highs) if np.isfinite(x) and x > 0])
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log", nonpositive="clip")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    if lows.size and highs.size:
        lo, hi = lows.min() / 2, highs.max() * 2
        ax.set_ylim(lo, hi)
        # below two decades matplotlib labels the minor ticks too: plain numbers, not 3x10^0
        ax.yaxis.set_minor_formatter(plain if hi / lo < 100 else NullFormatter())
    ax.grid(alpha=0.3, which="major")


def mark_zeros(ax, zeros) -> None:
    """Means of exactly 0 cannot sit on a log axis: an open triangle on its floor, and a
    note saying what it means."""
    if not zeros:
        return
    floor = ax.get_ylim()[0]
    for x, color in zeros:
        ax.plot([x], [floor], marker="v", mfc="none", color=color, ms=7, clip_on=False)
    ax.text(
        0.01,
        0.01,
        "open triangle on the floor: a mean of 0",
        transform=ax.transAxes,
        fontsize=7,
        color="0.3",
        va="bottom",
    )


def legend_right(ax, **kw) -> None:
    """The legend beside the axes, off the lines."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8, **kw)


def legend_below(fig, ax, ncol: int = 5) -> None:
    """One legend under the whole figure (for figures of several panels)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8
    )


def text_color(rgba) -> str:
    """Black or white, whichever reads on a cell of colour ``rgba`` (its luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else "white"


def image(alt: str, file: str) -> str:
    """A Markdown image whose alt text says what the figure shows."""
    return f"![{alt}]({file})"


def save(fig, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)


__all__ = [
    "FAILURE_PCT",
    "LABELS",
    "XAxis",
    "axis_label",
    "errorbar",
    "image",
    "legend_below",
    "legend_right",
    "mark_zeros",
    "log_limits",
    "pyplot",
    "save",
    "scheduler_style",
    "text_color",
]
