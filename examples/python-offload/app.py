"""offload: posts the oldest Audit Events as NDJSON to an HTTP collector, then deletes them.

Input `{}` or `{"batch": n}` (1..10000, default 500 rows per run); output
`{"offloaded": n, "more": bool}`.

1. how many rows may leave now: U14 (all but the page M10 reads again at its checkpoint, which
   it would otherwise store, and this flow offload, twice);
2. the oldest `batch` of them, one JSON object per line, POSTed to the secret OFFLOAD_URL
   (`Content-Type: application/x-ndjson`, `Authorization: Bearer <OFFLOAD_TOKEN>` when that
   secret is set); the host retries connect errors and 5xx;
3. only on a 2xx answer: those rows are deleted (one `delete_many`). The deletes commit with the run, so a failed
   POST, a non-2xx answer or a crash leaves every row in the table for the next run (at least
   once: a collector should dedupe on `id`).
"""

import json

from flowhost_sdk import WitWorld, FlowError, NotFound, call, flow, http, log, schedule, secrets, tables  # noqa: F401

TABLE = "Audit Events"
DEFAULT_BATCH = 500
MAX_BATCH = 10_000


@flow
def run(input):
    batch = batch_size(input)
    url = secrets.get("OFFLOAD_URL")
    offloadable = call("U14", {})["offloadable"]
    take = min(batch, offloadable)
    rows = tables.find(TABLE, {}, limit=take) if take > 0 else []
    if not rows:
        log.info("offload: nothing to do")
        return {"offloaded": 0, "more": False}

    post(url, rows)
    deleted = tables.delete_many(TABLE, [row["id"] for row in rows])
    if deleted != len(rows):
        # Nothing else writes Audit Events meanwhile (exclusive group asa): a row that vanished
        # means something is wrong, and failing keeps every row (the deletes roll back).
        raise FlowError(f"{TABLE}: {len(rows) - deleted} of the {len(rows)} rows vanished while they were being offloaded")

    more = offloadable > len(rows)
    log.info(f"offload: {len(rows)} events sent to the collector" + ("; more to do" if more else ""))
    if more:
        schedule.request_run("offload", input)
    return {"offloaded": len(rows), "more": more}


def batch_size(input):
    """`input["batch"]`, 1..10000 (default 500)."""
    if not isinstance(input, dict):
        raise FlowError(f'input must be a JSON object like {{"batch": {DEFAULT_BATCH}}}, not {input!r}')
    batch = input.get("batch", DEFAULT_BATCH)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise FlowError(f"input batch must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    return batch


def post(url, rows):
    """POSTs the rows as NDJSON; returns only when the collector answered 2xx."""
    headers = {"Content-Type": "application/x-ndjson"}
    try:
        headers["Authorization"] = f"Bearer {secrets.get('OFFLOAD_TOKEN')}"
    except NotFound:
        pass  # no token configured: the collector takes anonymous posts
    body = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    resp = http.post(url, headers=headers, body=body, retry=http.Retry(attempts=3, initial_ms=200, max_ms=2000))
    if not resp.ok:
        # The URL is a secret (it may carry a token): the error names the secret, not the URL.
        raise FlowError(
            f"POST to the collector (secret OFFLOAD_URL) answered HTTP {resp.status}: {resp.text[:200]}"
        )
