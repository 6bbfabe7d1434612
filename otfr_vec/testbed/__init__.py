"""A real, small serving cluster on one machine that checks the simulator's predictions.

``python -m otfr_vec.testbed run`` runs one configuration (the simulator's, scaled: see
:mod:`.config`) as real processes: a router (asyncio, aiohttp) routing through the online
policy library, prefill and decode workers serving HTTP whose compute is timed sleeps,
KV caches moved as real bytes over TCP, every worker's link shaped by Linux traffic
control inside a private network namespace, and degradation applied by changing rates.
It writes the simulator's Dataset variables. ``python -m otfr_vec.testbed compare`` runs
the same configuration in the testbed and in the simulator over several seeds.

Needs root. Layout: :mod:`.config` (defaults, scaling rule, options), :mod:`.bed` (host
side of a run), :mod:`.conductor` (inside the namespace), :mod:`.netns`,
:mod:`.shaping`, :mod:`.worker`, :mod:`.router`, :mod:`.loadgen`, :mod:`.headroom`,
:mod:`.dataset`, :mod:`.run` (runs to datasets), :mod:`.compare`.

This package's ``__init__`` imports nothing: the processes of a run load only the modules
they need (see ``conductor.LIGHT``).
"""
