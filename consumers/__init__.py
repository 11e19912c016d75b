"""The consumers of listings: the async scorer (`appraise score`), its batches, delivery,
panes and metrics."""
