# Sourced by the scripts that measure the release server against its floors (scripts/bench.sh,
# scripts/profile.sh): the settings both run the server and the full-body floor with, exported,
# so that the two measure the same server. Metrics on is each caller's own (a free port per
# start): their cost is part of what is measured. Rate limits far above anything a load
# generator sends; JSON logs, as deployed; no migrations at start (the seed ran them); the
# reconciler's sweep hourly, since it would otherwise run inside the measurements.
export JWT_SECRET=bench-secret-bench-secret-bench-secret HASHIDS_SALT=bench AUTO_MIGRATE=false \
  LOG_FORMAT=json RECONCILE_INTERVAL_SECS=3600 \
  RATE_LIMIT_PER_MIN=1000000000 CANCEL_RATE_LIMIT_PER_MIN=1000000000

# mint_token USER: a token for USER, valid for two hours.
mint_token() { "$API" token --user-id "$1" --ttl-secs 7200; }
