"""P(TR | scenario) with aleatory/epistemic split (`scenarios`), rare events (`rare_events`),
Sobol sensitivity (`sensitivity`), predictions for unseen tests (`newtests`), grouped CV (`crossval`).

Submodules are imported on use (OpenTURNS and PyMC are heavy)."""
