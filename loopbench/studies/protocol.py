"""The overhead probe's protocol in numbers: segment lengths, rounds, the precision target. Apart from the study
(studies/overhead.py) so that the command line reads its defaults without importing torch."""

SEGMENT_WARMUP, SEGMENT_STEPS = 40, 552  # 512 timed steps: 8 epochs of TRAIN_SIZE / 8 = 64 batches; ~0.15-1 s
TRAIN_SIZE = 512  # every segment crosses epoch ends, so what a Trainer does there (checkpoints) is in its mean


COUNT_WARMUP, COUNT_STEPS = 20, 84  # instruction counts: 64 counted steps, one epoch


# What each probe step does before the Trainer's work (`loopbench overhead --after`): nothing (a near-zero step:
# the floor), or a read of 64 MiB, which leaves the Trainer's per-step working set in memory rather than the
# L3, as the model's work and the time a real step takes do (docs/pay-curve.md); with the segment's steps
AFTER = {"nothing": ({}, SEGMENT_STEPS), "read": ({"ballast_mib": 64}, 96)}


# the overhead command's rounds at least; the suite's (they run while the probe is counted beside them)
MIN_ROUNDS, SUITE_ROUNDS = 12, 6
SUITE_STEPS = 296  # the suite's probe segments: 256 timed steps, 4 epochs, half the command's to fit the bench
TARGET = 0.05  # the overhead command adds rounds until each headline half-width is within 5% of its delta
