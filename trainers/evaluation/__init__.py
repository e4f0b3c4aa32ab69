"""Evaluating agents: against the scripted players (:mod:`~trainers.evaluation.scripted`), in
leagues of every player against every player (:mod:`~trainers.evaluation.league`), and an
IPD agent's reaction to the previous round (:mod:`~trainers.evaluation.cooperation`)."""
