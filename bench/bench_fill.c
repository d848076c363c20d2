/* Fills an outbox with N readings as the gateway would store them, for the backlog-drain bench. */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "bench_common.h"
#include "store/outbox.h"
#include "uplink/encode.h"

#define FILL_BATCH 1000

/* Usage: bench_fill PATH N. Appends N rows (seqs from the store's next one on)
 * with the payloads and topic of bench_reading(), in transactions of 1000
 * rows: what a gateway writes while its broker is away. The store's default
 * limits apply, as in a gateway's. */
int main(int argc, char **argv)
{
	static cg_outbox_row_t rows[FILL_BATCH];
	cg_encode_ctx_t ectx = {.gateway_id = BENCH_GATEWAY_ID};
	cg_outbox_opts_t opts = {.max_rows = 1000000, .max_bytes = 268435456};
	cg_outbox_t *ob = NULL;
	cg_reading_t r;
	char topic[256];
	long n, done = 0;
	int64_t seq;
	double t0;
	int rc = 0;

	cg_log_set_level(CG_LOG_WARNING);
	if (argc < 3 || (n = atol(argv[2])) <= 0) {
		cg_err("usage: bench_fill PATH N");
		return 2;
	}
	if (cg_outbox_open(argv[1], &opts, &ob) < 0)
		return 1;
	bench_reading(&r);
	cg_topic_reading(topic, sizeof(topic), BENCH_PREFIX, BENCH_GATEWAY_ID,
	                 cg_kind_name(r.kind), r.sensor);
	seq = cg_outbox_next_seq(ob);
	t0 = bench_now_s();
	while (done < n && rc == 0) {
		size_t k = n - done < FILL_BATCH ? (size_t)(n - done) : FILL_BATCH;

		for (size_t i = 0; i < k; i++) {
			rows[i] = (cg_outbox_row_t){
			    .seq = seq + (int64_t)i, .topic = topic, .created_ms = cg_now_ms()};
			r.ts_ms = rows[i].created_ms;
			rc = cg_encode(CG_FORMAT_NATIVE, &ectx, &r, rows[i].seq, &rows[i].payload,
			               &rows[i].len);
			if (rc < 0)
				break;
		}
		if (rc == 0)
			rc = cg_outbox_put(ob, rows, k);
		for (size_t i = 0; i < k; i++) {
			free(rows[i].payload);
			rows[i].payload = NULL;
		}
		seq += (int64_t)k;
		done += (long)k;
	}
	cg_outbox_close(ob);
	if (rc < 0) {
		cg_err("bench_fill: %s", cg_strerror(rc));
		return 1;
	}
	bench_result("mode=fill n=%ld seconds=%.2f", done, bench_now_s() - t0);
	return 0;
}
