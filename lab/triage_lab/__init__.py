"""The evaluation lab: scenarios, the corpus generator, importers, replay, scoring, and the
one fake per external system shared by tests, the lab and the benchmarks. Never in the image."""
