"""The pipeline: the drivers over the stages and the command line.

Before anything imports torch: torch's OpenMP threads (libgomp) wait for work by spinning for
300k iterations, which on a machine whose cores other processes share (a cluster node, a laptop
running a second job) keeps them off the cores the waiting thread needs. Measured on 2 cores with
one busy-looping process beside it, 10 epochs of stage 2 on NW-UCLA: 166 s spinning as shipped,
48 s with a 10k spin count; 18 s vs 19 s on the idle machine (docs/benchmarks.md). A value the
user sets wins."""
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
