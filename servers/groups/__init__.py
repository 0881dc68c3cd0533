"""Multi-node servers: one model across several nodes with vLLM's own launch or Ray, as one group of ranks.

- admission.py: which nodes, does every node's share fit, are the weights on every node, the master port;
- services.py: start, stop and restart a group, and what a rank's start, readiness, exit or stop does to it;
- on_demand.py: load on demand and unload when idle, for the whole group (the gateway asks through its leader);
- launch.py: on a rank's node, its preflight, argv and network environment;
- ray_launch.py: a Ray group's ranks: the leader's `ray start --head` sidecar, the followers' `ray start --address`;
- preflight.py: a preflight asked before any start, every node through its own queue.
"""
