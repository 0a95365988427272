"""Watching the fleet: one look at Redis and the broker (:mod:`.view`), served to Prometheus
(:mod:`.collector`) and to a browser (:mod:`.dashboard`) by a small HTTP server (:mod:`.web`);
log lines for people and machines (:mod:`.logs`)."""
